"""A finished run's student out the door: the exported safetensors, TorchScript and ONNX files
reproduce the student's logits on test images, and the sidecar says what the model expects."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdci_core.cli import main
from kdci_core.data import load_dataset
from kdci_core.runs.export import export_student, load_sidecar
from kdci_core.teachers import load_teacher
from tests.helpers import finished_runs


@pytest.fixture(scope="module")
def run(builtin):
    store, ids = finished_runs()
    return store, ids[(True, 0)]


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
