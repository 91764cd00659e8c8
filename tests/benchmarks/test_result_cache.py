"""The benchmarks' result cache replays only what the same engine measured, and says so: a
replayed row keeps its accuracy but is left out of every time and memory figure."""

import importlib.util
import json
from pathlib import Path

import pytest

COMMON = Path(__file__).resolve().parents[2] / "benchmarks" / "common.py"


@pytest.fixture()
def common(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_common", COMMON)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls = []

    def fake_cli(args):
        calls.append(list(args))
        return {"student_accuracy": 50.0 + len(calls), "teacher_accuracy": 90.0,
                "wall_time_s": 10.0 * len(calls), "peak_memory_mb": 100.0}

    monkeypatch.setattr(module, "run_cli", fake_cli)
    module.calls = calls
    return module


def test_a_replayed_row_is_marked_and_left_out_of_time_and_memory(common, tmp_path, capsys):
    path = tmp_path / "cache.jsonl"
    first = common.ResultCache(path)
    a = first.run(["distill", "--seed", "0"])
    assert a["replayed"] is False and len(common.calls) == 1
    line = json.loads(path.read_text().splitlines()[0])
    assert line["engine"] == common.engine_fingerprint() and line["settings"] == common.run_settings()

    second = common.ResultCache(path)
    again = second.run(["distill", "--seed", "0"])
    fresh = second.run(["distill", "--seed", "1"])
    assert again["replayed"] is True and again["student_accuracy"] == a["student_accuracy"]
    assert fresh["replayed"] is False and len(common.calls) == 2

    runs = [{**r, "seed": s, "method": "m", "variant": v, "telemetry": None}
            for r, s, v in ((again, 0, "off"), (fresh, 0, "on"))]
    row = common.variant_row("m", "on", [runs[1]], [runs[0]], "off")
    assert row["time_ratio"] is None and row["memory_ratio"] is None  # the reference was replayed
    ref_row = common.variant_row("m", "off", [runs[0]], [runs[0]], "off")
    assert ref_row["wall_time_s"] is None and ref_row["replayed_runs"] == 1
    assert row["wall_time_s"] == fresh["wall_time_s"] and row["timed_runs"] == 1
    common.print_table([ref_row, row], "t")
    out = capsys.readouterr().out
    assert "replayed" in out and "1 run(s) replayed from the cache" in out


def test_rows_of_another_engine_are_never_replayed(common, tmp_path, monkeypatch):
    path = tmp_path / "cache.jsonl"
    common.ResultCache(path).run(["distill"])
    monkeypatch.setattr(common, "engine_fingerprint", lambda: "another-engine")
    cache = common.ResultCache(path)
    assert cache.stale == 1 and not cache.known
    assert cache.run(["distill"])["replayed"] is False and len(common.calls) == 2


def test_finish_counts_only_measured_runs(common, tmp_path, capsys):
    class Args:
        out = tmp_path / "out.json"
        dataset = "digits"
    runs = [{"teacher_accuracy": 90.0, "replayed": True}, {"teacher_accuracy": 90.0, "replayed": False}]
    common.finish(Args(), "x", runs, [], started=0.0)
    out = capsys.readouterr().out
    assert "1 run(s) measured in" in out and "1 more replayed from the cache, not timed" in out
    data = json.loads(Args.out.read_text())
    assert data["measured_runs"] == 1 and data["replayed_runs"] == 1
