"""Teachers: validated loading of a user's checkpoint, and the built-in digits teacher.

Validation names exactly what mismatched (architecture, class count, input channels) and, when
the keys belong to another registered architecture, says which one it looks like.
"""

from __future__ import annotations

import fcntl
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from .checkpoints import read_checkpoint, save_checkpoint
from .data import load_dataset
from .device import resolve_device
from .errors import InputError
from .models import build_model, classifier_key, first_conv_key, model_names
from .progress import Progress
from .runstore import kdci_home
from .training import evaluate, parameter_count, train_classifier

BUILTIN_ARCH = "lenet5"
BUILTIN_DATASET = "digits"
BUILTIN_EPOCHS = 60
BUILTIN_SEED = 0


@dataclass
class TeacherBundle:
    """A ready teacher (eval mode, frozen) and what we know about it."""

    model: nn.Module
    arch: str
    num_classes: int
    in_channels: int
    source: str
    checkpoint_format: str
    parameter_count: int
    metadata: dict

    def describe(self) -> dict:
        return {"arch": self.arch, "num_classes": self.num_classes, "in_channels": self.in_channels,
                "source": self.source, "format": self.checkpoint_format,
                "parameters": self.parameter_count}


def checkpoint_classes(state_dict: dict, arch: str) -> int | None:
    """Class count read from the final layer's weight, if the key is where ``arch`` puts it."""
    w = state_dict.get(classifier_key(arch) + ".weight")
    return int(w.shape[0]) if w is not None and w.dim() == 2 else None


def build_validated(state_dict: dict, arch: str, *, num_classes: int | None = None,
                    in_channels: int | None = None, source: str = "checkpoint") -> nn.Module:
    """Build ``arch`` and load ``state_dict`` strictly, explaining any mismatch."""
    model_names_ = model_names()
    if arch not in model_names_:
        raise InputError(f"--arch: unknown architecture {arch!r}; expected one of {', '.join(model_names_)}")
    found_classes = checkpoint_classes(state_dict, arch)
    if num_classes is not None and found_classes is not None and found_classes != num_classes:
        raise InputError(f"{source}: class count mismatch: expected {num_classes} classes, "
                         f"the checkpoint's final layer has {found_classes}")
    conv = state_dict.get(first_conv_key(arch))
    found_channels = int(conv.shape[1]) if conv is not None and conv.dim() == 4 else None
    if in_channels is not None and found_channels is not None and found_channels != in_channels:
        raise InputError(f"{source}: input channel mismatch: the data has {in_channels} channel(s), "
                         f"the checkpoint's first convolution expects {found_channels}")
    classes = num_classes or found_classes
    if classes is None:
        raise InputError(f"{source}: cannot read the class count: no '{classifier_key(arch)}.weight' "
                         f"in the checkpoint, so it is not a {arch} checkpoint"
                         + _guess_arch(state_dict, arch))
    model = build_model(arch, num_classes=classes, in_channels=in_channels or found_channels or 3)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        raise InputError(
            f"{source}: expected a {arch} checkpoint, found different layers: {len(missing)} missing "
            f"(e.g. {', '.join(missing[:3]) or '-'}), {len(unexpected)} unexpected "
            f"(e.g. {', '.join(unexpected[:3]) or '-'})" + _guess_arch(state_dict, arch))
    wrong = [f"{k}: expected {tuple(v.shape)}, found {tuple(state_dict[k].shape)}"
             for k, v in expected.items() if tuple(v.shape) != tuple(state_dict[k].shape)]
    if wrong:
        raise InputError(f"{source}: expected a {arch} checkpoint, found {len(wrong)} tensor(s) of "
                         f"another shape: {'; '.join(wrong[:3])}" + _guess_arch(state_dict, arch))
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state_dict.items()})
    return model


def _guess_arch(state_dict: dict, tried: str) -> str:
    keys = set(state_dict)
    for name in model_names():
        if name == tried:
            continue
        classes = checkpoint_classes(state_dict, name) or 10
        conv = state_dict.get(first_conv_key(name))
        channels = int(conv.shape[1]) if conv is not None and conv.dim() == 4 else 3
        try:
            candidate = build_model(name, num_classes=classes, in_channels=channels).state_dict()
        except InputError:
            continue
        if set(candidate) == keys and all(candidate[k].shape == state_dict[k].shape for k in keys):
            return f"; its layers match {name!r}: try --arch {name}"
    return ""


def freeze(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_teacher(path, arch: str, *, num_classes: int | None = None, in_channels: int | None = None,
                 device: torch.device | str = "cpu") -> TeacherBundle:
    """Load and validate a teacher file (.safetensors, .pt/.pth state dict, TorchScript)."""
    state_dict, meta, fmt = read_checkpoint(path)
    model = build_validated(state_dict, arch, num_classes=num_classes, in_channels=in_channels,
                            source=f"checkpoint {path}")
    return TeacherBundle(model=freeze(model.to(device)), arch=arch, num_classes=model.num_classes,
                         in_channels=model.in_channels, source=str(path), checkpoint_format=fmt,
                         parameter_count=parameter_count(model), metadata=meta)


def builtin_teacher_path() -> Path:
    return kdci_home() / "teachers" / f"builtin-{BUILTIN_DATASET}-{BUILTIN_ARCH}-s{BUILTIN_SEED}.safetensors"


def builtin_teacher(*, device: torch.device | str = "cpu", progress: Progress = None) -> TeacherBundle:
    """The embedded default teacher: trained on digits on first use (seconds), then cached.

    A file lock makes concurrent first uses (several workers, a page and a CLI) train it once.
    """
    path = builtin_teacher_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            train_teacher(BUILTIN_DATASET, BUILTIN_ARCH, epochs=BUILTIN_EPOCHS, out=path,
                          seed=BUILTIN_SEED, device=resolve_device("cpu"), progress=progress)
    bundle = load_teacher(path, BUILTIN_ARCH, device=device)
    bundle.source = "builtin"
    return bundle


def train_teacher(dataset: str, arch: str, *, epochs: int, out, data_root=None, seed: int = 0,
                  lr: float = 0.05, batch_size: int = 128, device: torch.device,
                  progress: Progress = None) -> dict:
    """Train ``arch`` on ``dataset``, save it with its metadata, return the summary."""
    data = load_dataset(dataset, data_root)
    info = data.info
    torch.manual_seed(seed)
    model = build_model(arch, num_classes=info.num_classes, in_channels=info.in_channels)
    train_classifier(model, data.train, device=device, epochs=epochs, lr=lr, batch_size=batch_size,
                     seed=seed, progress=progress)
    ev = evaluate(model, data.test, num_classes=info.num_classes, device=device)
    summary = {"arch": arch, "dataset": dataset, "num_classes": info.num_classes,
               "in_channels": info.in_channels, "image_size": info.image_size, "epochs": epochs,
               "seed": seed, "test_accuracy": ev.accuracy, "per_class_accuracy": ev.per_class,
               "parameters": parameter_count(model), "out": str(out)}
    save_checkpoint(model, out, metadata={k: v for k, v in summary.items() if k != "out"})
    return summary


def metadata_accuracy(meta: dict) -> float | None:
    try:
        return float(json.loads(meta["test_accuracy"])) if "test_accuracy" in meta else None
    except (ValueError, TypeError):
        return None
