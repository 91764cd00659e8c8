"""Validated loading of a teacher (or any classifier) checkpoint into a frozen model.

Validation names exactly what mismatched (architecture, class count, input channels) and, when
the keys belong to another architecture (the zoo's or a common torchvision/timm one, ``suggest``),
says which ones they match. Reading the file (and telling a corrupt file from a pickle that asks
to run code) is ``models.weights``'; the wrappers it unwraps (``{"state_dict": ...}``,
``{"model": ...}``, a DataParallel ``module.`` prefix) are unwrapped here for safetensors too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..common.errors import InputError
from ..common.paths import file_sha256
from ..models import build_model, check_arch, classifier_key
from ..models.evaluation import parameter_count
from ..models.weights import _unwrap_state_dict, read_checkpoint
from .suggest import (candidates, checkpoint_channels, checkpoint_classes, match_phrase,
                      suggest_archs)


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


def build_validated(state_dict: dict, arch: str, *, num_classes: int | None = None,
                    in_channels: int | None = None, source: str = "checkpoint",
                    image_size: int | None = None) -> nn.Module:
    """Build ``arch`` (a zoo name, ``tv:NAME`` or ``timm:NAME``) and load ``state_dict``
    strictly, explaining any mismatch; ``image_size``: for an architecture built per size (a
    ViT), the size it was trained at."""
    check_arch(arch)
    found_classes = checkpoint_classes(state_dict, arch)
    if num_classes is not None and found_classes is not None and found_classes != num_classes:
        raise InputError(f"{source}: class count mismatch: expected {num_classes} classes, "
                         f"the checkpoint's final layer has {found_classes}")
    found_channels = checkpoint_channels(state_dict, arch)
    if in_channels is not None and found_channels is not None and found_channels != in_channels:
        raise InputError(f"{source}: input channel mismatch: the data has {in_channels} channel(s), "
                         f"the checkpoint's first convolution expects {found_channels}")
    classes = num_classes or found_classes
    if classes is None:
        raise InputError(f"{source}: cannot read the class count: no '{classifier_key(arch)}.weight' "
                         f"in the checkpoint, so it is not a {arch} checkpoint"
                         + _guess_arch(state_dict, arch))
    model = build_model(arch, num_classes=classes, in_channels=in_channels or found_channels or 3,
                        image_size=image_size)
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
    return match_phrase(suggest_archs(state_dict, exclude=(tried,)))


def read_state_dict(path) -> tuple[dict, dict, str]:
    """``(state_dict, metadata, format)`` of a weights file, its wrappers and prefixes removed
    (``models.weights`` does it for pickled files; a safetensors file can carry a prefix too)."""
    state_dict, meta, fmt = read_checkpoint(path)
    if fmt == "safetensors":
        state_dict = _unwrap_state_dict(state_dict, path)
    return state_dict, meta, fmt


def infer_arch(path, field: str = "--arch") -> str:
    """The architecture of a weights file when none is named: the one candidate (``suggest``)
    whose keys and shapes it has; none or several is an InputError asking for ``field``."""
    found = suggest_archs(read_state_dict(path)[0])
    if len(found) == 1:
        return found[0]
    if found:
        raise InputError(f"{field}: required: the layers of {path} match {len(found)} "
                         f"architectures, {', '.join(repr(n) for n in found)}; give one of them")
    raise InputError(f"{field}: required: the layers of {path} match none of the {len(candidates())} "
                     "common architectures searched (the zoo, common torchvision and timm "
                     "classifiers); give its architecture (a zoo name, tv:NAME or timm:NAME)")


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
                 device: torch.device | str = "cpu", require_finite: bool = True,
                 image_size: int | None = None) -> TeacherBundle:
    """Load and validate a teacher file (.safetensors or a .pt/.pth state dict; TorchScript is
    refused: it runs code when loaded). ``arch``: a zoo name, ``tv:NAME`` or ``timm:NAME``.
    ``require_finite=False`` lets a report show a run's student that diverged (its NaN weights
    are a result, not a bad input); ``image_size``: see :func:`build_validated`."""
    state_dict, meta, fmt = read_state_dict(path)
    if require_finite:
        check_finite(state_dict, f"checkpoint {path}")
    model = build_validated(state_dict, arch, num_classes=num_classes, in_channels=in_channels,
                            source=f"checkpoint {path}", image_size=image_size)
    return TeacherBundle(model=freeze(model.to(device)), arch=arch, num_classes=model.num_classes,
                         in_channels=model.in_channels, source=str(path), checkpoint_format=fmt,
                         parameter_count=parameter_count(model), metadata=meta,
                         sha256=file_sha256(path))


def metadata_accuracy(meta: dict) -> float | None:
    try:
        return float(json.loads(meta["test_accuracy"])) if "test_accuracy" in meta else None
    except (ValueError, TypeError):
        return None
