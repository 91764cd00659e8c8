"""A finished run's student, exported for deployment, with a JSON sidecar that says what it
expects and what it scored (``kdci export RUN_ID --format F --out FILE``).

The file is replaced in one step (``models.export``), then its sidecar, which names it by size
and sha256: a kill leaves the old pair, the new pair, or a pair ``load_sidecar`` refuses."""

from __future__ import annotations

import time
from pathlib import Path

from ..common.atomic_files import sweep_stale
from ..common.errors import InputError
from ..common.jsonio import atomic_write_json, read_json
from ..common.paths import file_sha256
from ..models.export import export_model, written_files
from ..teachers import load_teacher
from ..teachers.input_spec import run_dataset
from .store import RunStore

STUDENT = "student.safetensors"


def export_student(store: RunStore, run_id: str, fmt: str, out: Path | str) -> tuple[Path, Path]:
    """Write the run's raw student (the deployed model, never the KDCI-compensated one) as
    ``fmt`` to ``out`` and its sidecar to ``out`` + ``.json``; returns both paths."""
    run = store.get(run_id)
    result, cfg = run.fit_result(), run.config()
    if result is None or not run.path(STUDENT).exists():
        raise InputError(f"run {run_id}: not finished (status {run.status().get('status')}); only a "
                         "finished run has a student to export")
    data = run_dataset(cfg, {"input_spec": result.input_spec})  # at the run's input spec (the teacher's size, normalisation)
    info = data.info
    student = load_teacher(run.path(STUDENT), cfg["student"], image_size=info.image_size).model
    example = data.test.images[:2]
    path = export_model(student, fmt, out, example, metadata={"run_id": run_id, "arch": cfg["student"]})
    files = [file_facts(f) for f in written_files(path)]
    sidecar = Path(f"{path}.json")
    sweep_stale(sidecar)  # the temporary of a sidecar write killed earlier
    atomic_write_json(sidecar, {  # after its file: a kill between leaves a pair load_sidecar refuses
        "run_id": run_id, "format": fmt, **files[0], "external_files": files[1:],
        "architecture": cfg["student"], "num_classes": info.num_classes,
        "class_names": list(info.class_names), "in_channels": info.in_channels,
        "input_size": [info.image_size, info.image_size],
        "input": "float32 N x C x H x W, each channel normalised: (x - mean) / std with x in [0, 1]",
        "normalisation": {"mean": list(info.mean), "std": list(info.std)},
        # the keys a teacher's sidecar has (teachers.input_spec): this student can teach in turn
        "image_size": info.image_size, "mean": list(info.mean), "std": list(info.std),
        "input_spec_source": (result.input_spec or {}).get("source"),
        "output": f"logits N x {info.num_classes} (argmax = class index into class_names)",
        "dataset": cfg["dataset"], "student_accuracy": result.student_accuracy,
        "teacher": cfg.get("teacher"), "teacher_arch": result.teacher_arch,
        "teacher_accuracy": result.teacher_accuracy,
        "teacher_sha256": result.teacher_sha256, "method": cfg.get("method"),
        "kdci": cfg.get("kdci"), "exported_at": time.strftime("%Y-%m-%d %H:%M:%S %Z")})
    return path, sidecar


def file_facts(path: Path) -> dict:
    """What identifies one exported file: its name, size in bytes and sha256."""
    return {"file": path.name, "size": path.stat().st_size, "sha256": file_sha256(path)}


def load_sidecar(path) -> dict:
    """The sidecar of the exported file ``path``, checked against the files it describes (an
    export interrupted after its file, before its sidecar, leaves a pair that does not match)."""
    path = Path(path)
    meta = read_json(Path(f"{path}.json"))
    if meta is None:
        raise InputError(f"{path}.json: no sidecar beside {path.name}; export the run again")
    for facts in [meta, *meta.get("external_files", [])]:
        f = path.parent / facts["file"]
        found = file_facts(f) if f.is_file() else {"size": None, "sha256": None}
        if (found["size"], found["sha256"]) != (facts.get("size", found["size"]), facts["sha256"]):
            raise InputError(f"{path}.json: describes a {facts['file']} of {facts.get('size')} bytes, sha256 "
                             f"{facts['sha256']}; found {found['size']} bytes, sha256 {found['sha256']} "
                             "(an interrupted export?); export the run again")
    return meta
