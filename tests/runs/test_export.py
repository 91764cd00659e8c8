"""A finished run's student out the door: the exported safetensors, TorchScript and ONNX files
reproduce the student's logits on test images, and the sidecar says what the model expects."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from kdci_core.cli import main
from kdci_core.data import load_dataset
from kdci_core.errors import InputError
from kdci_core.runs.export import export_student, load_sidecar
from kdci_core.teachers import load_teacher
from tests.helpers import REPO, finished_runs


@pytest.fixture(scope="module")
def run(builtin):
    store, ids = finished_runs()
    return store, ids[(True, 0)]


@pytest.fixture(scope="module")
def runs_pair(builtin):
    """Two finished runs whose students differ."""
    store, ids = finished_runs()
    return store, ids[(True, 0)], ids[(False, 1)]


@pytest.mark.parametrize("fmt, suffix", [("safetensors", ".safetensors"), ("torchscript", ".pt"),
                                         ("onnx", ".onnx")])
def test_exported_student_reproduces_the_students_logits(run, tmp_path, fmt, suffix):
    store, run_id = run
    path, sidecar = export_student(store, run_id, fmt, tmp_path / f"student{suffix}")
    student = load_teacher(store.get(run_id).path("student.safetensors"), "lenet5_half").model
    images = load_dataset("digits").test.images[:50]
    with torch.no_grad():
        expected = student(images)
    if fmt == "safetensors":
        got = load_teacher(path, "lenet5_half").model(images)
    elif fmt == "torchscript":
        got = torch.jit.load(str(path))(images)
    else:
        import onnxruntime

        # one self-contained file: read from its bytes alone, as a downloaded copy is
        assert sorted(f.name for f in tmp_path.iterdir()) == ["student.onnx", "student.onnx.json"]
        session = onnxruntime.InferenceSession(path.read_bytes())
        got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: images.numpy()})[0])
    assert torch.allclose(got, expected, atol=1e-4)
    meta = load_sidecar(path)
    assert meta["architecture"] == "lenet5_half" and meta["num_classes"] == 10
    assert meta["input_size"] == [8, 8] and meta["in_channels"] == 1 and len(meta["normalisation"]["mean"]) == 1
    assert meta["student_accuracy"] == pytest.approx(store.get(run_id).result()["student_accuracy"])
    assert len(meta["teacher_sha256"]) == 64 and meta["format"] == fmt


def test_export_command_and_its_errors(run, tmp_path, monkeypatch, capsys):
    store, run_id = run
    monkeypatch.setenv("KDCI_HOME", str(store.home))
    out = tmp_path / "s.onnx"
    assert main(["export", run_id, "--format", "onnx", "--out", str(out)]) == 0
    assert out.exists() and (tmp_path / "s.onnx.json").exists()
    assert main(["export", run_id, "--format", "onnx", "--out", str(tmp_path / "s.pt")]) == 2
    assert "should end in .onnx" in capsys.readouterr().err
    unfinished = store.create({"method": "deepinv", "kdci": True, "student": "lenet5_half",
                               "dataset": "digits"}).run_id
    assert main(["export", unfinished, "--format", "safetensors", "--out", str(tmp_path / "u.safetensors")]) == 2
    assert "not finished" in capsys.readouterr().err
    np.testing.assert_equal(load_sidecar(out)["input_size"], [8, 8])


# --- an interrupted export: the old pair, the new pair, or a pair the sidecar's reader refuses ---

def _pair(folder) -> dict:
    """Every name in ``folder``: a file's bytes, a folder's (a temporary's) file names."""
    return {p.name: sorted(f.name for f in p.iterdir()) if p.is_dir() else p.read_bytes()
            for p in folder.iterdir()}


def _partial_onnx_then(fail):
    """A stand-in for torch.onnx.export that writes part of a file, then fails as ``fail`` does."""
    def export(model, args, f, **kwargs):
        with open(f, "wb") as out:
            out.write(b"\x08\x07partial onnx")
        fail()
    return export


def test_an_export_failing_midway_keeps_the_old_pair(run, tmp_path, monkeypatch):
    store, run_id = run
    out = tmp_path / "s.onnx"
    export_student(store, run_id, "onnx", out)
    old = _pair(tmp_path)

    def fail():
        raise RuntimeError("exporter crashed")
    monkeypatch.setattr(torch.onnx, "export", _partial_onnx_then(fail))
    with pytest.raises(RuntimeError, match="exporter crashed"):
        export_student(store, run_id, "onnx", out)
    assert _pair(tmp_path) == old  # the old file and sidecar, no temporary beside them
    assert load_sidecar(out)["file"] == "s.onnx"


def test_a_sidecar_that_describes_another_file_is_refused(runs_pair, tmp_path, monkeypatch, capsys):
    """Killed after the new file is in place, before its sidecar: the reader says so."""
    store, first, second = runs_pair
    out = tmp_path / "s.safetensors"
    export_student(store, first, "safetensors", out)
    meta = load_sidecar(out)
    assert meta["size"] == out.stat().st_size and len(meta["sha256"]) == 64

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # what a kill between the two writes leaves behind
    monkeypatch.setattr("kdci_core.runs.export.atomic_write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        export_student(store, second, "safetensors", out)
    with pytest.raises(InputError, match=r"s\.safetensors\.json: describes a s\.safetensors of \d+ bytes"):
        load_sidecar(out)
    monkeypatch.undo()
    monkeypatch.setenv("KDCI_HOME", str(store.home))
    assert main(["export", second, "--format", "safetensors", "--out", str(out)]) == 0  # again: consistent
    assert load_sidecar(out)["run_id"] == second
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.safetensors", "s.safetensors.json"]


_KILLED_MIDWAY = textwrap.dedent("""
    import os, signal, sys
    import torch
    from kdci_core.cli import main

    def export(model, args, f, **kwargs):
        with open(f, "wb") as out:
            out.write(b"partial")
        os.kill(os.getpid(), signal.SIGKILL)
    torch.onnx.export = export
    sys.exit(main(sys.argv[1:]))
""")


def test_an_export_command_killed_midway_keeps_the_old_pair(run, tmp_path):
    store, run_id = run
    out = tmp_path / "s.onnx"
    export_student(store, run_id, "onnx", out)
    old = _pair(tmp_path)
    argv = [sys.executable, "-c", _KILLED_MIDWAY, "export", run_id, "--format", "onnx", "--out", str(out)]
    proc = subprocess.run(argv, cwd=REPO, env={**os.environ, "KDCI_HOME": str(store.home)},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr
    left = _pair(tmp_path)
    assert {k: v for k, v in left.items() if not k.startswith(".")} == old
    assert [k for k in left if k.startswith(".s.onnx.")]  # a SIGKILL leaves its temporary folder
    assert load_sidecar(out)["sha256"]  # the old pair still matches
    export_student(store, run_id, "onnx", out)  # the next export sweeps the killed one's folder
    assert sorted(_pair(tmp_path)) == ["s.onnx", "s.onnx.json"]


def test_onnx_external_data_travels_with_its_sidecar(run, tmp_path, monkeypatch):
    """Weights beyond protobuf's limit go to a .data file beside the graph: it is written in the
    same step, named in the sidecar with its size and hash, and checked by the reader."""
    import onnxruntime

    from kdci_core.models import export as model_export

    store, run_id = run
    monkeypatch.setattr(model_export, "ONNX_INLINE_LIMIT", 0)
    path, _ = export_student(store, run_id, "onnx", tmp_path / "s.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.onnx", "s.onnx.data", "s.onnx.json"]
    meta = load_sidecar(path)
    data = tmp_path / "s.onnx.data"
    assert [f["file"] for f in meta["external_files"]] == ["s.onnx.data"]
    assert meta["external_files"][0]["size"] == data.stat().st_size
    images = load_dataset("digits").test.images[:5]
    session = onnxruntime.InferenceSession(str(path))
    assert session.run(None, {"images": images.numpy()})[0].shape == (5, 10)
    data.write_bytes(data.read_bytes()[:-4])
    with pytest.raises(InputError, match=r"describes a s\.onnx\.data of"):
        load_sidecar(path)


def test_a_torchscript_export_prints_no_future_warning(tmp_path):
    """``export --format torchscript`` printed torch.jit.trace's FutureWarning (issue 22)."""
    import warnings

    import torch

    from kdci_core.models import build_model
    from kdci_core.models.export import export_model

    model = build_model("lenet5_half", num_classes=10, in_channels=1).eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_model(model, "torchscript", tmp_path / "s.pt", torch.randn(2, 1, 8, 8))
    assert not [w for w in caught if issubclass(w.category, FutureWarning)], [str(w.message) for w in caught]
