"""What several pages share, in one place: the session state (the chosen device and teacher),
progress bars, and the server-wide store of diagnoses (so a browser refresh or another tab
finds the substitution data again).

Presentation glue only; every computation is a ``kdci_core`` call.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
import torch

from kdci_core.common.device import resolve_device
from kdci_core.common.errors import InputError
from kdci_core.common.jsonio import atomic_write_json, read_json
from kdci_core.common.paths import kdci_home
from kdci_core.distill import DistillConfig
from kdci_core.teachers import upload_record

DEVICE_KEY = "kdci_device"


def device() -> torch.device:
    """The sidebar's device choice, resolved (stops the page with a clear error if unusable)."""
    try:
        return resolve_device(st.session_state.get(DEVICE_KEY, remembered("device", "auto")))
    except InputError as exc:
        st.error(str(exc))
        st.stop()


def _state_file() -> Path:
    return kdci_home() / "dashboard" / "state.json"


def remembered(key: str, default=None):
    """A choice the dashboard kept in the run store (it outlives a refresh, a new tab and a server
    restart; one dashboard per $KDCI_HOME, so one set of choices)."""
    try:
        return (read_json(_state_file()) or {}).get(key, default)
    except InputError:  # a torn or foreign file: forget it rather than break every page
        return default


def remember(key: str, value) -> None:
    path = _state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        state = read_json(path) or {}
    except InputError:
        state = {}
    atomic_write_json(path, {**state, key: value})


def _usable(record) -> bool:
    return bool(record) and (record.get("source") == "builtin" or Path(record.get("path", "")).is_file())


def chosen_teacher() -> dict | None:
    """The teacher chosen on the Teacher page: this session's, else a ``?teacher=<sha256>`` link's
    (``builtin`` for the built-in one), else the last one chosen on this dashboard."""
    t = st.session_state.get("teacher")
    if t:
        return t
    link = st.query_params.get("teacher")
    record = {"source": "builtin"} if link == "builtin" else (upload_record(link) if link else None)
    if not _usable(record):
        record = remembered("teacher")
    if _usable(record):
        st.session_state["teacher"] = record
        return record
    return None


def set_teacher(record: dict | None) -> None:
    """Make ``record`` the teacher of every page (None: back to the built-in default), for this
    session and for later ones, and put it in the address bar."""
    if record is None:
        st.session_state.pop("teacher", None)
        remember("teacher", None)
        return
    st.session_state["teacher"] = record
    remember("teacher", record)
    st.query_params["teacher"] = record.get("sha256") or "builtin"


def teacher_config() -> DistillConfig:
    """A config for the teacher chosen on the Teacher page; the built-in digits teacher if none."""
    t = chosen_teacher()
    dev = str(st.session_state.get(DEVICE_KEY, remembered("device", "auto")))
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
