"""What several pages share, in one place: the session state (the chosen device and teacher),
progress bars, messages in the page's words, and the diagnoses (server-wide and kept in the run
store, so a refresh, another tab or a server restart finds the substitution data again).

Presentation glue only; every computation is a ``kdci_core`` call.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import streamlit as st
import torch

from kdci_core.common.device import resolve_device
from kdci_core.common.errors import InputError
from kdci_core.common.jsonio import atomic_write_json, read_json
from kdci_core.common.paths import kdci_home
from kdci_core.diagnostics.saved import load_diagnoses, save_diagnosis, teacher_id
from kdci_core.distill import DistillConfig
from kdci_core.teachers import upload_record

DEVICE_KEY = "kdci_device"


def device() -> torch.device:
    """The sidebar's device choice, resolved (stops the page with a clear error if unusable)."""
    try:
        return resolve_device(st.session_state.get(DEVICE_KEY, remembered("device", "auto")))
    except InputError as exc:
        show_error(exc)
        st.stop()


#: command-line flags in engine messages -> where a page sets the same thing (every page)
PAGE_FIELDS = {"--device": "'Device' (sidebar)", "--teacher-arch": "'Architecture' on the Teacher page",
               "--teacher": "the teacher chosen on the Teacher page",
               "--dataset": "'Dataset' on the Teacher page", "--data-root": "'Data root' on the Teacher page",
               "--num-classes": "'Classes' on the Teacher page"}
_FLAG = re.compile(r"--[a-z][a-z0-9-]*")


def page_message(message: str, fields: dict | None = None) -> str:
    """An engine message in the page's words: its command-line flags (``--wild-data``) and the
    engine's parameter names (``inception_weights``) replaced by the fields a user sees here;
    ``fields`` adds or overrides this page's own."""
    names = {**PAGE_FIELDS, **(fields or {})}
    message = _FLAG.sub(lambda m: names.get(m.group(0), m.group(0)), str(message))
    for word, field in names.items():
        if not word.startswith("--"):
            message = re.sub(rf"\b{re.escape(word)}\b", field, message)
    return message


#: ASCII punctuation but "-", which is Markdown only where a line starts (a list, a rule)
_MARKUP = re.compile(r"([!-,./:-@\[-`{-~])")


def as_text(value) -> str:
    """``value`` shown as itself by any Streamlit element that renders Markdown (labels,
    captions, alerts, toasts): ASCII punctuation backslash-escaped (CommonMark shows an escaped
    one as itself, so no emphasis, link, image, ``:red[...]`` or ``$math$``), "-" only at the
    start (ids stay readable), line breaks as spaces. For what users type (tags, notes, run
    names, a link's run ids)."""
    text = _MARKUP.sub(r"\\\1", " ".join(str(value).splitlines()))
    return "\\" + text if text.startswith("-") else text


def error_text(exc: Exception | str, fields: dict | None = None) -> str:
    """An engine error in the page's words. An :class:`InputError` says which flag or parameter
    is at fault (``exc.field``): it is named by the widget that sets it here, followed by the
    error's own detail, in which only flags a hint mentions ("give --teacher-arch") are named the
    same way (:func:`page_message`), never a parameter name that is also a word. Anything else goes through :func:`page_message` whole."""
    names = {**PAGE_FIELDS, **(fields or {})}
    field = getattr(exc, "field", None)
    if isinstance(exc, InputError) and field in names:  # the detail's own words stay as they are
        flags = {k: v for k, v in names.items() if k.startswith("--")}
        return f"{names[field]}: {page_message(exc.detail, flags)}"
    return page_message(str(exc), fields)


def show_error(exc: Exception | str, fields: dict | None = None) -> None:
    """``st.error`` with the engine's error in the page's words (:func:`error_text`)."""
    st.error(error_text(exc, fields))


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
    """Server-wide {teacher key: {"diagnoses": {method: Diagnosis}, "problems": {method: why}}},
    filled from the run store on first use: shared by the Substitution data and Confounder
    dictionary pages, and kept on disk (``keep_diagnosis``) so a server restart finds them."""
    return {}


def _teacher_id(cfg: DistillConfig) -> str:
    """The teacher's id in the run store: ``builtin`` or its file's sha256 (the Teacher page's
    record has it; a file chosen otherwise is hashed)."""
    t = chosen_teacher()
    known = t.get("sha256") if t and t.get("path") == cfg.teacher else None
    return teacher_id(cfg, known)


def _entry(cfg: DistillConfig) -> dict:
    store = diagnosis_store()
    key = teacher_key(cfg)
    if key not in store:
        try:
            found, problems = load_diagnoses(cfg, _teacher_id(cfg))
        except InputError as exc:  # the teacher file went away: nothing kept can be found
            found, problems = {}, {"*": str(exc)}
        store[key] = {"diagnoses": found, "problems": problems}
    return store[key]


def diagnoses_for(cfg: DistillConfig) -> dict:
    """The latest diagnosis of each method made with this teacher and dataset (read from the run
    store the first time; one that cannot be read is left out: :func:`diagnosis_problem`)."""
    return _entry(cfg)["diagnoses"]


def diagnosis_problem(cfg: DistillConfig, method: str) -> str | None:
    """Why ``method``'s saved substitution data could not be read (None: nothing wrong), for the
    page to say next to its offer to make them again."""
    problems = _entry(cfg)["problems"]
    why = problems.get(method) or problems.get("*")
    return None if why is None else (f"The saved substitution data of {method} could not be read, so "
                                     f"they are treated as absent (make them again to replace them): {why}")


def keep_diagnosis(cfg: DistillConfig, diag) -> None:
    """Make ``diag`` its method's latest for this teacher: in memory, and in the run store."""
    entry = _entry(cfg)
    method = diag.data.method
    entry["diagnoses"][method] = diag
    entry["problems"].pop(method, None)
    try:
        save_diagnosis(diag, _teacher_id(cfg))
    except (OSError, InputError) as exc:
        st.warning(f"The substitution data of {method} could not be saved in the run store, so it "
                   f"lasts only until the server restarts: {exc}", icon=":material/warning:")


try:  # Streamlit records st calls made inside a cached function, to replay them on cache hits
    from streamlit.runtime.scriptrunner_utils.script_run_context import in_cached_function
except ImportError:  # another Streamlit: the bar's messages are replayed, ending empty (harmless)
    in_cached_function = None


@contextlib.contextmanager
def _not_replayed():
    """A progress bar is about this computation, not part of its cached result: drawn outside
    ``st.cache_data``'s recording, so a cache hit replays nothing (no bar without work)."""
    token = in_cached_function.set(False) if in_cached_function is not None else None
    try:
        yield
    finally:
        if token is not None:
            in_cached_function.reset(token)


class ProgressBar:
    """A ``kdci_core`` progress callback drawing one Streamlit bar (at most ~100 redraws).

    ``lazy``: the bar appears at the first report, so a cached function that makes one shows
    nothing when its result comes from the cache. ``counts``: the text ends in ``done/total``
    (steps, images); off for an action measured in stages' units (a projection), whose text
    ends in its percentage."""

    def __init__(self, text: str, *, lazy: bool = False, counts: bool = True):
        self.text, self.bar, self.last, self.counts = text, None, (None, -1), counts
        if not lazy:
            self._draw(0.0, text)

    def _draw(self, value: float, text: str) -> None:
        with _not_replayed():
            if self.bar is None:
                self.bar = st.progress(value, text=text)
            else:
                self.bar.progress(value, text=text)

    def __call__(self, done: int, total: int, desc: str) -> None:
        pct = int(100 * done / max(total, 1))
        if (desc, pct) != self.last:
            self.last = (desc, pct)
            pct = min(max(pct, 0), 100)
            self._draw(pct / 100, f"{desc}: {done}/{total}" if self.counts else f"{desc} ({pct}%)")

    def empty(self) -> None:
        if self.bar is not None:
            with _not_replayed():
                self.bar.empty()


@contextlib.contextmanager
def progress_bar(text: str, *, counts: bool = True):
    """A lazy :class:`ProgressBar` for the block (for the body of an ``st.cache_data``
    function), removed when the block ends, also on an error."""
    bar = ProgressBar(text, lazy=True, counts=counts)
    try:
        yield bar
    finally:
        bar.empty()
