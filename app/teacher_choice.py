"""What the Teacher page decided about the chosen teacher that a run's config needs beyond its
file and architecture: the input values the user typed there (image size, channels, mean, std:
DistillConfig fields, which win over the file's own), and what the teacher can serve (its
capabilities: the Runs form greys out the methods it cannot).
"""

from __future__ import annotations

from dataclasses import replace

from app.shared import chosen_teacher
from kdci_core.distill import DistillConfig
from kdci_core.methods.needs import methods_for_teacher
from kdci_core.teachers import ONNX_CAPABILITIES, is_onnx_path
from kdci_core.teachers.input_spec import FIELDS


def _record_of(cfg: DistillConfig) -> dict | None:
    """The Teacher page's record of ``cfg``'s teacher (None: chosen otherwise, or never)."""
    t = chosen_teacher()
    if not t:
        return None
    if cfg.teacher == "builtin":
        return t if t.get("source") == "builtin" else None
    return t if t.get("path") == cfg.teacher else None


def input_overrides(cfg: DistillConfig) -> dict:
    """The input values typed on the Teacher page for this teacher (only those: the rest is
    resolved from the teacher's sidecar, metadata, graph or the dataset, by every reader)."""
    record = _record_of(cfg) or {}
    return {k: record[k] for k in FIELDS if record.get(k) is not None}


def with_teacher_input(cfg: DistillConfig) -> DistillConfig:
    """``cfg`` with the Teacher page's input values, where the config has none of its own."""
    extra = {k: v for k, v in input_overrides(cfg).items() if getattr(cfg, k, None) is None}
    return replace(cfg, **extra) if extra else cfg


def capabilities(cfg: DistillConfig) -> frozenset | None:
    """What ``cfg``'s teacher can serve: as the Teacher page measured it, else an ONNX file's
    (a black box: logits only); None when unknown (the run's own check then decides)."""
    caps = (_record_of(cfg) or {}).get("capabilities")
    if caps is not None:
        return frozenset(caps)
    if cfg.teacher and cfg.teacher != "builtin" and is_onnx_path(cfg.teacher):
        return frozenset(ONNX_CAPABILITIES)
    return None


def unserved(cfg: DistillConfig) -> dict[str, str]:
    """{method: why this teacher cannot serve it}; empty when it serves all or is unknown."""
    caps = capabilities(cfg)
    if caps is None:
        return {}
    return {m: why for m, why in methods_for_teacher(caps).items() if why is not None}
