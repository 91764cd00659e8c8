"""``kdci runs export --tensorboard DIR RUN...``: a run's scalars as TensorBoard event files that
TensorBoard's own reader gives back; without the optional package, one line saying how to
install it (exit 2)."""

from __future__ import annotations

import sys

import pytest

from kdci_core.cli import main
from kdci_core.runs import RunStore
from kdci_core.runs.tensorboard import TENSORBOARD_PIN


def _run(store):
    run = store.create({"method": "deepinv", "kdci": True, "seed": 0, "epochs": 2, "steps_per_epoch": 5,
                        "teacher": "builtin", "dataset": "digits"})
    run.set_status("running", started_at=1000.0)
    for e, acc in ((1, 40.0), (2, 55.5)):
        run.append_metrics({"epoch": e, "step": 5 * e, "student_accuracy": acc, "loss": 2.0 / e,
                            "wall_time_s": 3.0 * e, "cpu_percent": 90.0 + e, "kdci": True})
    for s in (2, 4, 6, 8, 10):
        run.append_steps({"step": s, "epoch": s / 5, "loss": 1.0 / s, "lr": 0.01, "wall_time_s": 0.5 * s})
    run.write_result({"student_accuracy": 55.5, "teacher_accuracy": 97.0, "wall_time_s": 6.5})
    run.set_status("finished", finished_at=1007.0)
    return run


def test_export_reads_back_with_tensorboards_reader(tmp_path, monkeypatch, capsys):
    pytest.importorskip("tensorboard", reason="tensorboard is an optional dependency (requirements.txt)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("KDCI_HOME", str(tmp_path / "home"))
    run = _run(RunStore(tmp_path / "home"))
    out = tmp_path / "tb"
    for _ in range(2):  # a second export replaces the first: no curve twice
        assert main(["runs", "export", "--tensorboard", str(out), run.run_id]) == 0
    assert f"{run.run_id}: " in capsys.readouterr().out
    assert len(list((out / run.run_id).glob("events.out.tfevents.*"))) == 1
    acc = EventAccumulator(str(out / run.run_id))
    acc.Reload()
    got = {tag: [(e.step, round(e.value, 4)) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    assert got["epoch/student_accuracy"] == [(5, 40.0), (10, 55.5)]
    assert got["epoch/loss"] == [(5, 2.0), (10, 1.0)]
    assert got["epoch/cpu_percent"] == [(5, 91.0), (10, 92.0)]
    assert got["step/loss"] == [(s, round(1.0 / s, 4)) for s in (2, 4, 6, 8, 10)]
    assert got["final/student_accuracy"] == [(10, 55.5)] and got["final/teacher_accuracy"] == [(10, 97.0)]
    assert "epoch/kdci" not in got  # booleans are not scalars
    assert acc.Scalars("epoch/student_accuracy")[0].wall_time == 1003.0  # the run's own clock


def test_without_tensorboard_the_command_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KDCI_HOME", str(tmp_path / "home"))
    run = _run(RunStore(tmp_path / "home"))
    for name in [m for m in sys.modules if m.split(".")[0] == "tensorboard"] + ["tensorboard"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed (None: ImportError)
    assert main(["runs", "export", "--tensorboard", str(tmp_path / "tb"), run.run_id]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"pip install '{TENSORBOARD_PIN}'" in err
    assert not (tmp_path / "tb").exists()


def test_unknown_run_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KDCI_HOME", str(tmp_path / "home"))
    RunStore(tmp_path / "home")
    assert main(["runs", "export", "--tensorboard", str(tmp_path / "tb"), "nosuchrun"]) == 2
    assert not (tmp_path / "tb").exists()
