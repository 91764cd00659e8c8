"""The embedded default teacher: a LeNet-5 the project trains itself on scikit-learn's digits.

Trained on first use (seconds on a CPU) and cached under ``$KDCI_HOME/teachers``, so every page
and method works with no upload and no data.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

import torch

from ..common.device import resolve_device
from ..common.errors import InputError
from ..common.paths import kdci_home
from ..common.progress import Progress
from .load import TeacherBundle, load_teacher
from .onnx_teacher import is_onnx_path, load_onnx_teacher
from .train import train_teacher

BUILTIN_ARCH = "lenet5"
BUILTIN_DATASET = "digits"
BUILTIN_EPOCHS = 60
BUILTIN_SEED = 0


def builtin_teacher_path() -> Path:
    return kdci_home() / "teachers" / f"builtin-{BUILTIN_DATASET}-{BUILTIN_ARCH}-s{BUILTIN_SEED}.safetensors"


def builtin_teacher(*, device: torch.device | str = "cpu", progress: Progress = None) -> TeacherBundle:
    """The embedded default teacher: trained on digits on first use (seconds), then cached.

    A file lock makes concurrent first uses (several workers, a page and a CLI) train it once.
    """
    path = builtin_teacher_path()
    if not path.exists():  # once trained it is only read (a read-only store can still use it)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not path.exists():
                train_teacher(BUILTIN_DATASET, BUILTIN_ARCH, epochs=BUILTIN_EPOCHS, out=path,
                              seed=BUILTIN_SEED, device=resolve_device("cpu"), progress=progress)
    bundle = load_teacher(path, BUILTIN_ARCH, device=device)
    bundle.source = "builtin"
    return bundle


def load_named_teacher(source: str, arch: str | None, *, num_classes: int, in_channels: int,
                       dataset: str, device: torch.device | str = "cpu",
                       progress: Progress = None, image_size: int | None = None) -> TeacherBundle:
    """The teacher a run names: ``"builtin"``, an ``.onnx`` black box (no ``arch``: its graph
    says; ``image_size``, the data's, is checked against it) or a checkpoint file of ``arch``,
    checked against the dataset's class count (``--teacher``/``--teacher-arch`` in the messages)."""
    if source == "builtin":
        return builtin_teacher(device=device, progress=progress)
    if is_onnx_path(source):
        bundle = load_onnx_teacher(source, device=device, in_channels=in_channels, image_size=image_size)
    else:
        bundle = load_teacher(source, arch, in_channels=in_channels, device=device, image_size=image_size)
    if bundle.num_classes != num_classes:
        raise InputError(f"--teacher {source}: class count mismatch: the checkpoint has "
                         f"{bundle.num_classes} classes, dataset {dataset} has {num_classes}")
    return bundle
