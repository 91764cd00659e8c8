"""A finished run's student, exported for deployment, with a JSON sidecar that says what it
expects and what it scored (``kdci export RUN_ID --format F --out FILE``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..common.errors import InputError
from ..common.jsonio import atomic_write_json
from ..common.paths import file_sha256
from ..data import load_dataset
from ..models.export import export_model
from ..teachers import load_teacher
from .store import RunStore

STUDENT = "student.safetensors"


def export_student(store: RunStore, run_id: str, fmt: str, out: Path | str) -> tuple[Path, Path]:
    """Write the run's raw student (the deployed model, never the KDCI-compensated one) as
    ``fmt`` to ``out`` and its sidecar to ``out`` + ``.json``; returns both paths."""
    run = store.get(run_id)
    result, cfg = run.result(), run.config()
    if result is None or not run.path(STUDENT).exists():
        raise InputError(f"run {run_id}: not finished (status {run.status().get('status')}); only a "
                         "finished run has a student to export")
    student = load_teacher(run.path(STUDENT), cfg["student"]).model
    data = load_dataset(cfg["dataset"], cfg.get("data_root"))
    info = data.info
    example = data.test.images[:2]
    path = export_model(student, fmt, out, example, metadata={"run_id": run_id, "arch": cfg["student"]})
    sidecar = Path(f"{path}.json")
    atomic_write_json(sidecar, {
        "run_id": run_id, "format": fmt, "file": path.name, "sha256": file_sha256(path),
        "architecture": cfg["student"], "num_classes": info.num_classes,
        "class_names": list(info.class_names), "in_channels": info.in_channels,
        "input_size": [info.image_size, info.image_size],
        "input": "float32 N x C x H x W, each channel normalised: (x - mean) / std with x in [0, 1]",
        "normalisation": {"mean": list(info.mean), "std": list(info.std)},
        "output": f"logits N x {info.num_classes} (argmax = class index into class_names)",
        "dataset": cfg["dataset"], "student_accuracy": result.get("student_accuracy"),
        "teacher": cfg.get("teacher"), "teacher_arch": result.get("teacher_arch"),
        "teacher_accuracy": result.get("teacher_accuracy"),
        "teacher_sha256": result.get("teacher_sha256"), "method": cfg.get("method"),
        "kdci": cfg.get("kdci"), "exported_at": time.strftime("%Y-%m-%d %H:%M:%S %Z")})
    return path, sidecar


def load_sidecar(path) -> dict:
    return json.loads(Path(f"{path}.json").read_text())
