"""What several pages share, in one place: the session state (the chosen device and teacher),
progress bars, and the server-wide store of diagnoses (so a browser refresh or another tab
finds the substitution data again).

Presentation glue only; every computation is a ``kdci_core`` call.
"""

from __future__ import annotations

import streamlit as st
import torch

from kdci_core.common.device import resolve_device
from kdci_core.common.errors import InputError
from kdci_core.distill import DistillConfig

DEVICE_KEY = "kdci_device"


def device() -> torch.device:
    """The sidebar's device choice, resolved (stops the page with a clear error if unusable)."""
    try:
        return resolve_device(st.session_state.get(DEVICE_KEY, "auto"))
    except InputError as exc:
        st.error(str(exc))
        st.stop()


def teacher_config() -> DistillConfig:
    """A config for the teacher chosen on the Teacher page; the built-in digits teacher if none."""
    t = st.session_state.get("teacher")
    dev = str(st.session_state.get(DEVICE_KEY, "auto"))
    if not t or t.get("source") == "builtin":
        return DistillConfig(teacher="builtin", dataset="digits", device=dev)
    return DistillConfig(teacher=t["path"], teacher_arch=t["arch"], dataset=t["dataset"],
                         data_root=t.get("data_root"), device=dev)


def teacher_caption(cfg: DistillConfig) -> str:
    if cfg.teacher == "builtin":
        return "Teacher: the built-in `lenet5` on digits (choose another on the Teacher page)."
    return f"Teacher: `{cfg.teacher_arch}` from the Teacher page, on `{cfg.dataset}`."


def teacher_key(cfg: DistillConfig) -> tuple:
    return (cfg.teacher, cfg.teacher_arch, cfg.dataset, cfg.data_root)


@st.cache_resource
def diagnosis_store() -> dict:
    """Server-wide {teacher key: {method: Diagnosis}}: survives browser refreshes and is shared by
    the Substitution data and Confounder dictionary pages (not a server restart)."""
    return {}


def diagnoses_for(cfg: DistillConfig) -> dict:
    """The latest diagnosis of each method made with this teacher and dataset."""
    return diagnosis_store().setdefault(teacher_key(cfg), {})


class ProgressBar:
    """A ``kdci_core`` progress callback drawing one Streamlit bar (at most ~100 redraws)."""

    def __init__(self, text: str):
        self.bar = st.progress(0.0, text=text)
        self.last = (None, -1)

    def __call__(self, done: int, total: int, desc: str) -> None:
        pct = int(100 * done / max(total, 1))
        if (desc, pct) != self.last:
            self.last = (desc, pct)
            self.bar.progress(min(pct, 100) / 100, text=f"{desc}: {done}/{total}")

    def empty(self) -> None:
        self.bar.empty()
