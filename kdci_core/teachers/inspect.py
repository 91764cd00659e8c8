"""What is known about one teacher on one dataset: the ``TeacherReport`` that the Teacher page and
``teacher inspect`` both show (validation result, parameters, test and per-class accuracy).

All checkpoint reading is :func:`load_teacher`'s (never plain unpickling) or, for an ``.onnx``
black box, :func:`load_onnx_teacher`'s; this module scores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..common.errors import InputError
from ..data import LabeledDataset, load_dataset
from ..models.evaluation import evaluate
from .builtin import builtin_teacher
from .capabilities import teacher_capabilities
from .input_spec import load_at_spec, resolve_input_spec
from .load import TeacherBundle, load_teacher
from .onnx_teacher import is_onnx_path, load_onnx_teacher


#: a teacher whose test accuracy is within this many points of chance is barely better than
#: guessing on the chosen data: the Teacher page and ``teacher inspect`` say so
CHANCE_MARGIN = 5.0


def chance_level(num_classes: int) -> float:
    return 100.0 / max(int(num_classes), 1)


def near_chance(accuracy: float, num_classes: int) -> bool:
    """The rule: test accuracy below chance (100 / classes) + :data:`CHANCE_MARGIN` points."""
    return float(accuracy) < chance_level(num_classes) + CHANCE_MARGIN


@dataclass
class TeacherReport:
    """What the Teacher page shows about one validated teacher on one dataset."""

    arch: str
    checkpoint_format: str
    source: str
    dataset: str
    data_source: str
    num_classes: int
    in_channels: int
    parameters: int
    accuracy: float
    per_class: list
    class_names: list
    confusion: np.ndarray
    metadata: dict = field(default_factory=dict)
    #: what the teacher can serve (``teachers.capabilities``): the pages grey out the rest's methods
    capabilities: list = field(default_factory=list)
    #: C, H, W of a teacher that fixes its input (an ONNX graph), else None
    input_shape: list | None = None

    @property
    def headline(self) -> str:
        if self.checkpoint_format == "onnx":
            return "valid ONNX graph (a black box: its outputs only)"
        return f"valid {self.arch} checkpoint ({self.checkpoint_format})"

    def to_dict(self) -> dict:
        """JSON-safe (the confusion matrix as nested lists)."""
        d = asdict(self)
        d["confusion"] = np.asarray(self.confusion).tolist()
        return d


def report_for(bundle: TeacherBundle, data: LabeledDataset, device: torch.device) -> TeacherReport:
    """Score a loaded teacher on the dataset's test split."""
    info = data.info
    if bundle.num_classes != info.num_classes:
        raise InputError(f"class count: the teacher has {bundle.num_classes} classes, dataset "
                         f"{info.name!r} has {info.num_classes}")
    ev = evaluate(bundle.model, data.test, num_classes=info.num_classes, device=device)
    return TeacherReport(
        arch=bundle.arch, checkpoint_format=bundle.checkpoint_format, source=bundle.source,
        dataset=info.name, data_source=str(data.source), num_classes=bundle.num_classes,
        in_channels=bundle.in_channels, parameters=bundle.parameter_count, accuracy=ev.accuracy,
        per_class=list(ev.per_class), class_names=[str(c) for c in info.class_names],
        confusion=ev.confusion, metadata=dict(bundle.metadata or {}),
        capabilities=sorted(teacher_capabilities(bundle.model)),
        input_shape=list(getattr(bundle.model, "input_shape", None) or []) or None)


def inspect_checkpoint(path, arch: str | None, num_classes: int | None, dataset: str,
                       data_root=None, *, device: torch.device | str = "cpu",
                       data: LabeledDataset | None = None) -> TeacherReport:
    """Validate a saved teacher file against ``arch``/``num_classes``/``dataset`` and score it.
    An ``.onnx`` file needs neither ``arch`` nor ``num_classes`` (None): its graph says.

    Every problem (unsafe pickle, wrong architecture, class or channel mismatch, missing data)
    surfaces as an :class:`InputError` from the engine.
    """
    device = torch.device(device)
    if data is None:  # at the teacher's input spec (its sidecar, metadata, graph, timm's config)
        spec = resolve_input_spec(teacher=str(path), teacher_arch=arch, dataset=dataset)
        data = load_at_spec(dataset, data_root or None, spec)[0]
    if num_classes is not None and int(num_classes) != data.info.num_classes:
        raise InputError(f"class count: expected the {data.info.num_classes} classes of dataset "
                         f"{data.info.name!r}, found {int(num_classes)} entered")
    if is_onnx_path(path):
        bundle = load_onnx_teacher(Path(path), device=device, num_classes=num_classes,
                                   in_channels=data.info.in_channels, image_size=data.info.image_size)
    else:
        if num_classes is None:
            raise InputError("class count: expected the number of classes of the checkpoint, "
                             "found none entered")
        bundle = load_teacher(Path(path), arch, num_classes=int(num_classes),
                              in_channels=data.info.in_channels, device=device,
                              image_size=data.info.image_size)
    return report_for(bundle, data, device)


def builtin_report(device: torch.device | str = "cpu", progress=None,
                   data: LabeledDataset | None = None) -> TeacherReport:
    """The built-in digits teacher (trained on first use, with ``progress``) and its scores."""
    device = torch.device(device)
    bundle = builtin_teacher(device=device, progress=progress)
    return report_for(bundle, data if data is not None else load_dataset("digits"), device)
