"""Validated loading of a teacher (or any classifier) checkpoint into a frozen model.

Validation names exactly what mismatched (architecture, class count, input channels) and, when
the keys belong to another registered architecture, says which one it looks like. Reading the
file (and telling a corrupt file from a pickle that asks to run code) is ``models.weights``'.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..common.errors import InputError
from ..common.paths import file_sha256
from ..models import build_model, classifier_key, first_conv_key, model_names
from ..models.evaluation import parameter_count
from ..models.weights import read_checkpoint


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
    #: sha256 of the checkpoint file: what identifies this teacher, whatever its file name
    sha256: str | None = None

    def describe(self) -> dict:
        return {"arch": self.arch, "num_classes": self.num_classes, "in_channels": self.in_channels,
                "source": self.source, "format": self.checkpoint_format,
                "parameters": self.parameter_count, "sha256": self.sha256}


def checkpoint_classes(state_dict: dict, arch: str) -> int | None:
    """Class count read from the final layer's weight, if the key is where ``arch`` puts it."""
    w = state_dict.get(classifier_key(arch) + ".weight")
    return int(w.shape[0]) if w is not None and w.dim() == 2 else None


def build_validated(state_dict: dict, arch: str, *, num_classes: int | None = None,
                    in_channels: int | None = None, source: str = "checkpoint") -> nn.Module:
    """Build ``arch`` and load ``state_dict`` strictly, explaining any mismatch."""
    model_names_ = model_names()
    if arch not in model_names_:
        raise InputError(f"architecture: unknown architecture {arch!r}; expected one of "
                         f"{', '.join(model_names_)}")
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
            return f"; its layers match {name!r}: choose that architecture"
    return ""


def check_finite(state_dict: dict, source: str) -> None:
    """Refuse weights holding NaN or Inf: such a model predicts one class for every input (its
    "accuracy" is the share of that class), so it is no teacher at all. Names each tensor."""
    bad = []
    for name, t in state_dict.items():
        if t.is_floating_point() or t.is_complex():
            n = int(t.numel() - torch.isfinite(t).sum())
            if n:
                bad.append(f"{name} ({n:,} of {t.numel():,} values)")
    if bad:
        raise InputError(f"{source}: expected finite weights, found NaN/Inf in {len(bad)} tensor(s): "
                         f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}")


def freeze(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_teacher(path, arch: str, *, num_classes: int | None = None, in_channels: int | None = None,
                 device: torch.device | str = "cpu", require_finite: bool = True) -> TeacherBundle:
    """Load and validate a teacher file (.safetensors or a .pt/.pth state dict; TorchScript is
    refused: it runs code when loaded). ``require_finite=False`` lets a report show a run's
    student that diverged (its NaN weights are a result, not a bad input)."""
    state_dict, meta, fmt = read_checkpoint(path)
    if require_finite:
        check_finite(state_dict, f"checkpoint {path}")
    model = build_validated(state_dict, arch, num_classes=num_classes, in_channels=in_channels,
                            source=f"checkpoint {path}")
    return TeacherBundle(model=freeze(model.to(device)), arch=arch, num_classes=model.num_classes,
                         in_channels=model.in_channels, source=str(path), checkpoint_format=fmt,
                         parameter_count=parameter_count(model), metadata=meta,
                         sha256=file_sha256(path))


def metadata_accuracy(meta: dict) -> float | None:
    try:
        return float(json.loads(meta["test_accuracy"])) if "test_accuracy" in meta else None
    except (ValueError, TypeError):
        return None
