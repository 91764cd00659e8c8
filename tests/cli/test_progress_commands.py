"""The long commands say what they are doing (issue 22): ``report`` puts its stages (the
comparison, the student views, each file and figure) on a progress bar, ``export`` says each
step and checks the written file by running it against the student, ``diagnose --projection``
draws the projection's stages."""

from __future__ import annotations

import json

import pytest

from kdci_core.cli import main
from tests.helpers import finished_runs


class Recorded:
    """Stands in for the commands' tqdm progress: keeps every report."""

    made: list = []

    def __init__(self, enabled: bool = True):
        self.enabled, self.calls = enabled, []
        Recorded.made.append(self)

    def __call__(self, done, total, desc):
        self.calls.append((done, total, desc))

    def write(self, text):
        pass

    def close(self):
        pass


@pytest.fixture
def recorded(monkeypatch):
    from kdci_core.common import progress

    Recorded.made = []
    monkeypatch.setattr(progress, "TqdmProgress", Recorded)
    return Recorded.made


def test_report_puts_its_stages_on_one_bar(builtin, tmp_path, monkeypatch, recorded):
    store, ids = finished_runs()
    monkeypatch.setenv("KDCI_HOME", str(store.home))
    out = tmp_path / "r.html"
    assert main(["report", "--runs", *ids.values(), "--out", str(out), "--no-students"]) == 0
    (bar,) = recorded
    assert bar.enabled and {c[1] for c in bar.calls} == {bar.calls[-1][0]}  # one total, reached
    words = [c[2] for c in bar.calls]
    assert words[0] == "report: comparing 4 runs" and "report: writing the JSON" in words
    assert any(w.startswith("report: HTML figure") for w in words)
    assert main(["report", "--runs", *ids.values(), "--out", str(out), "--no-students", "--quiet"]) == 0
    assert not recorded[-1].enabled


def test_export_says_each_step_and_checks_the_file(builtin, tmp_path, monkeypatch, capsys):
    store, ids = finished_runs()
    monkeypatch.setenv("KDCI_HOME", str(store.home))
    run_id, out = ids[(True, 0)], tmp_path / "s.onnx"
    assert main(["export", run_id, "--format", "onnx", "--out", str(out), "--json", str(tmp_path / "e.json")]) == 0
    captured = capsys.readouterr()
    assert "export: loading" in captured.err and "export: checking s.onnx" in captured.err
    assert "check: onnxruntime runs s.onnx; its predictions agree with the student's on 100.0% of 256" \
        in captured.out
    check = json.loads((tmp_path / "e.json").read_text())["check"]
    assert check["agreement"] == 100.0 and check["max_abs_logit_diff"] < 1e-3
    assert main(["export", run_id, "--format", "torchscript", "--out", str(tmp_path / "s.pt"), "--quiet",
                 "--no-check"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "check:" not in captured.out
    assert main(["export", run_id, "--format", "torchscript", "--out", str(tmp_path / "s.pt"), "--quiet"]) == 0
    assert "check: s.pt not loaded back: loading a TorchScript file runs its code" in capsys.readouterr().out


def test_a_check_that_disagrees_says_so(builtin, tmp_path, monkeypatch):
    """The check runs the file: an export of another student's weights agrees less than fully."""
    from kdci_core.runs.export import export_student
    from kdci_core.runs.export_check import check_export

    store, ids = finished_runs()
    path, _ = export_student(store, ids[(False, 1)], "safetensors", tmp_path / "other.safetensors")
    check = check_export(store, ids[(True, 0)], path, "safetensors")
    assert check["agreement"] < 100.0 and check["max_abs_logit_diff"] > 1e-3


def test_diagnose_projection_draws_its_stages(builtin, tmp_path, monkeypatch, recorded):
    monkeypatch.setenv("KDCI_HOME", str(tmp_path))
    js = tmp_path / "d.json"
    assert main(["diagnose", "--teacher", "builtin", "--dataset", "digits", "--method", "deepinv",
                 "--param", "g_steps=2", "--rounds", "1", "--fid", "none", "--projection", "pca",
                 "--json", str(js)]) == 0
    words = [c[2] for c in recorded[0].calls]
    assert any(w.startswith("PCA: fitting") for w in words) and any(w.startswith("PCA: done") for w in words)
    out = json.loads(js.read_text())["projection"]
    assert out["method"] == "pca" and len(out["points"]) == len(out["labels"])
    assert len(out["prototypes"]) == json.loads(js.read_text())["dictionary"]["k"]
