"""An exported student checked as its user would load it: the file on its own (an ONNX graph by
onnxruntime, through the black-box teacher's checks; a safetensors file through its
architecture), run on the run's test images, its predictions compared with the run's student's
(``kdci export`` prints the agreement; ``--no-check`` skips it). A TorchScript file is never
loaded back, not even our own: loading one runs its code (``models.checkpoint_files`` refuses
them everywhere); ``torch.jit.trace`` compared the traced module with the student when it was
written (its ``check_trace``), and the check says so.

Why: an export that loads but computes something else (a wrong input size, a lost layer) is only
caught by running it; the user otherwise finds out in deployment."""

from __future__ import annotations

from pathlib import Path

import torch

from ..teachers import load_onnx_teacher, load_teacher
from ..teachers.input_spec import run_dataset
from .store import RunStore

STUDENT = "student.safetensors"
#: test images the check runs (the first ones of the split)
CHECK_IMAGES = 256


def _exported(path: Path, fmt: str, arch: str, info):
    if fmt == "onnx":
        return load_onnx_teacher(path, device="cpu", num_classes=info.num_classes,
                                 in_channels=info.in_channels, image_size=info.image_size).model
    return load_teacher(path, arch, image_size=info.image_size).model


def check_export(store: RunStore, run_id: str, path: Path | str, fmt: str, *,
                 images: int = CHECK_IMAGES) -> dict:
    """Run the exported file and the run's student on the first ``images`` test images: how many
    predictions agree (percent) and the largest difference between their logits."""
    if fmt == "torchscript":
        return {"format": fmt, "checked": False, "runtime": None,
                "note": "not loaded back: loading a TorchScript file runs its code, which this product "
                        "never does; torch.jit.trace compared the traced module with the student when "
                        "it was written"}
    run = store.get(run_id)
    cfg = run.config()
    data = run_dataset(cfg, run.result())
    info, x = data.info, data.test.images[:images]
    student = load_teacher(run.path(STUDENT), cfg["student"], image_size=info.image_size).model.eval()
    exported = _exported(Path(path), fmt, cfg["student"], info)
    with torch.no_grad():
        want = student(x).float()
        got = torch.as_tensor(exported(x)).float()
    agree = (got.argmax(1) == want.argmax(1)).float().mean().item() * 100
    return {"format": fmt, "checked": True, "images": len(x), "agreement": agree,
            "max_abs_logit_diff": (got - want).abs().max().item(),
            "runtime": "onnxruntime" if fmt == "onnx" else "torch"}
