"""Teacher page helpers: save an upload safely, validate a checkpoint, build the report figures.

No Streamlit here, so tests can call these directly (AppTest cannot drive ``st.file_uploader``).
All checkpoint reading and scoring is delegated to ``kdci_core``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import torch

from kdci_core.checkpoints import MAX_CHECKPOINT_BYTES
from kdci_core.data import LabeledDataset, load_dataset
from kdci_core.errors import InputError
from kdci_core.runstore import kdci_home
from kdci_core.teachers import TeacherBundle, builtin_teacher, load_teacher
from kdci_core.training import evaluate

UPLOAD_TYPES = ["safetensors", "pt", "pth", "ts", "torchscript"]
ACCENT = "#4F46E5"


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

    @property
    def headline(self) -> str:
        return f"valid {self.arch} checkpoint ({self.checkpoint_format})"


def sanitise_name(name: str) -> str:
    """Base name only, letters/digits/``._-`` kept (others become ``_``), no leading dots."""
    base = re.split(r"[\\/]", str(name or ""))[-1]
    clean = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")
    if len(clean) > 128:
        stem, dot, suffix = clean.rpartition(".")
        keep = dot and len(suffix) < 32
        clean = stem[: 127 - len(suffix)] + dot + suffix if keep else clean[:128]
    return clean or "checkpoint"


def check_upload_size(name: str, size: int) -> None:
    """Reject an upload larger than the engine's checkpoint limit, before anything is written."""
    if size > MAX_CHECKPOINT_BYTES:
        raise InputError(f"upload {name}: expected at most {MAX_CHECKPOINT_BYTES >> 20} MiB, "
                         f"found {size / 2**20:.0f} MiB")
    if size == 0:
        raise InputError(f"upload {name}: the file is empty")


def save_upload(name: str, data: bytes, home: Path | None = None) -> tuple[Path, str]:
    """Write uploaded bytes to ``$KDCI_HOME/uploads/<sanitised name>``; return (path, sha256)."""
    check_upload_size(name, len(data))
    folder = Path(home or kdci_home()) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / sanitise_name(name)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str:
    """sha256 of a file, read in chunks (cache key for a checkpoint on disk)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
        confusion=ev.confusion, metadata=dict(bundle.metadata or {}))


def inspect_checkpoint(path, arch: str, num_classes: int, dataset: str, data_root=None, *,
                       device: torch.device | str = "cpu", data: LabeledDataset | None = None
                       ) -> TeacherReport:
    """Validate a saved teacher file against ``arch``/``num_classes``/``dataset`` and score it.

    Every problem (unsafe pickle, wrong architecture, class or channel mismatch, missing data)
    surfaces as an :class:`InputError` from the engine.
    """
    device = torch.device(device)
    data = data if data is not None else load_dataset(dataset, data_root or None)
    if int(num_classes) != data.info.num_classes:
        raise InputError(f"class count: expected the {data.info.num_classes} classes of dataset "
                         f"{data.info.name!r}, found {int(num_classes)} entered")
    bundle = load_teacher(Path(path), arch, num_classes=int(num_classes),
                          in_channels=data.info.in_channels, device=device)
    return report_for(bundle, data, device)


def builtin_report(device: torch.device | str = "cpu", progress=None,
                   data: LabeledDataset | None = None) -> TeacherReport:
    """The built-in digits teacher (trained on first use, with ``progress``) and its scores."""
    device = torch.device(device)
    bundle = builtin_teacher(device=device, progress=progress)
    return report_for(bundle, data if data is not None else load_dataset("digits"), device)


def per_class_figure(report: TeacherReport) -> go.Figure:
    """Bar chart of per-class test accuracy, class names on the x axis, overall as a dotted line."""
    acc = [None if a != a else a for a in report.per_class]  # NaN (no test samples) -> gap
    fig = go.Figure(go.Bar(x=report.class_names, y=acc, marker_color=ACCENT, name="per class",
                           text=[_pct(a) for a in acc], textposition="inside", textangle=0,
                           insidetextanchor="end", textfont=dict(color="white"),
                           hovertemplate="class %{x}: %{y:.2f}%<extra></extra>"))
    fig.add_hline(y=report.accuracy, line_dash="dot", line_color="#F59E0B", line_width=2)
    fig.update_layout(title="Per-class accuracy", yaxis_title="accuracy (%)",
                      xaxis_title=f"class (dotted line: overall {report.accuracy:.1f}%)",
                      yaxis_range=[0, 100.5], xaxis_type="category",
                      margin=dict(l=10, r=10, t=60, b=10), height=420)
    return fig


def _pct(a) -> str:
    return "n/a" if a is None else (f"{a:.0f}" if a in (0.0, 100.0) else f"{a:.1f}")


def confusion_figure(report: TeacherReport) -> go.Figure:
    """Heatmap of the confusion matrix (rows: true class, columns: predicted class)."""
    cm = np.asarray(report.confusion)
    names = report.class_names
    text = [[str(v) if v else "" for v in row] for row in cm.tolist()] if len(names) <= 20 else None
    fig = go.Figure(go.Heatmap(
        z=cm, x=names, y=names, colorscale=[[0, "#FFFFFF"], [1, ACCENT]], text=text,
        texttemplate="%{text}" if text else None,
        hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>", colorbar=dict(title="n")))
    fig.update_layout(title="Confusion matrix (rows: true class)",
                      xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed",
                      xaxis_type="category", yaxis_type="category",
                      margin=dict(l=10, r=10, t=60, b=10), height=420)
    return fig
