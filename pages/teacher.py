"""Teacher page: use the built-in digits teacher or validate an uploaded checkpoint, then show
its parameters, test accuracy, per-class accuracy and confusion matrix (ACCEPTANCE 4.1).

Presentation only: loading, validation and scoring are ``kdci_core.teachers`` calls (the
``TeacherReport`` that ``kdci teacher inspect`` prints); expensive results are cached with
``st.cache_resource``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
import torch

from app.shared import ProgressBar, chosen_teacher, device, set_teacher, show_error
from kdci_core.common.allowed_paths import check_allowed
from kdci_core.common.errors import InputError
from kdci_core.data import dataset_names, load_dataset
from kdci_core.figures.teacher import confusion_figure, per_class_figure
from kdci_core.models import MAX_CHECKPOINT_BYTES, model_names
from kdci_core.teachers import (BUILTIN_ARCH, BUILTIN_DATASET, UPLOAD_TYPES, TeacherReport,
                                builtin_report, builtin_teacher, builtin_teacher_path,
                                check_upload_size, file_digest, inspect_checkpoint, remember_upload,
                                save_upload)

BUILTIN, UPLOAD = "Built-in digits teacher", "Upload a checkpoint"
#: engine names (the CLI's flags) -> this page's fields, for its error messages
FIELDS = {"--arch": "'Architecture'", "--teacher-arch": "'Architecture'", "--num-classes": "'Classes'",
          "--dataset": "'Dataset'", "--data-root": "'Data root (optional)'",
          "--teacher": "the teacher checkpoint"}


@st.cache_resource(show_spinner="Loading dataset…", max_entries=8)
def cached_dataset(name: str, root: str):
    """A dataset, loaded once per (name, root)."""
    return load_dataset(name, root or None)


@st.cache_resource(show_spinner="Evaluating the built-in teacher…", max_entries=4)
def cached_builtin(device: str, digest: str) -> TeacherReport:
    """The built-in teacher's report; ``digest`` keys it to the file on disk."""
    return builtin_report(device, data=cached_dataset(BUILTIN_DATASET, ""))


@st.cache_resource(show_spinner="Validating and evaluating the checkpoint…", max_entries=8)
def cached_upload(path: str, digest: str, arch: str, num_classes: int, dataset: str, root: str,
                  device: str) -> TeacherReport:
    """An uploaded teacher's report, keyed by file content and every choice that affects it."""
    return inspect_checkpoint(path, arch, num_classes, dataset, root, device=device,
                              data=cached_dataset(dataset, root))


def _train_builtin_with_progress() -> None:
    """First use: train the built-in teacher with a live progress bar (later uses load it)."""
    bar = ProgressBar("Training the built-in teacher on digits (first use only)…")
    builtin_teacher(device=torch.device("cpu"), progress=bar)
    bar.empty()


def show_builtin(device: torch.device) -> TeacherReport | None:
    st.caption(f"A `{BUILTIN_ARCH}` trained on scikit-learn's bundled 8x8 digits the first time "
               f"it is needed, then cached at `{builtin_teacher_path()}`.")
    try:
        if not builtin_teacher_path().exists():
            _train_builtin_with_progress()
        report = cached_builtin(str(device), file_digest(builtin_teacher_path()))
    except InputError as exc:
        show_error(exc, FIELDS)
        return None
    set_teacher({"source": "builtin", "arch": report.arch, "path": "builtin",
                 "num_classes": report.num_classes, "dataset": report.dataset})
    return report


def _saved_upload(uploaded) -> tuple[str, str]:
    """Write the upload once per file id; return (path, sha256)."""
    saved = st.session_state.get("_teacher_upload")
    if saved and saved[0] == uploaded.file_id and Path(saved[1]).is_file():
        return saved[1], saved[2]
    check_upload_size(uploaded.name, uploaded.size)
    path, digest = save_upload(uploaded.name, uploaded.getvalue())
    st.session_state["_teacher_upload"] = (uploaded.file_id, str(path), digest)
    return str(path), digest


def show_upload(device: torch.device) -> TeacherReport | None:
    current = chosen_teacher()
    current = current if current and current.get("source") == "upload" else None
    uploaded = st.file_uploader(
        "Teacher checkpoint", type=UPLOAD_TYPES,
        help=f".safetensors or a .pt/.pth state dict (loaded weights-only); at most "
             f"{MAX_CHECKPOINT_BYTES >> 20} MiB. Files that would run code are refused: pickles "
             "with code, TorchScript and torch.export archives; save the weights instead "
             "(`torch.save(model.state_dict(), path)`). Stored by content (sha256), never "
             "overwritten.")
    archs, datasets = model_names(), dataset_names()
    defaults = current or {"arch": BUILTIN_ARCH, "num_classes": 10, "dataset": BUILTIN_DATASET}
    c1, c2, c3 = st.columns(3)
    arch = c1.selectbox("Architecture", archs, index=archs.index(defaults["arch"])
                        if defaults["arch"] in archs else 0)
    num_classes = int(c2.number_input("Classes", min_value=2, max_value=100_000,
                                      value=int(defaults["num_classes"]), step=1))
    dataset = c3.selectbox("Dataset", datasets, index=datasets.index(defaults["dataset"])
                           if defaults["dataset"] in datasets else 0)
    root = st.text_input("Data root (optional)", value=defaults.get("data_root") or "",
                         placeholder="folder with the dataset's files; empty: the default location",
                         help="only under the folders the operator allows (an error lists them)").strip()
    if uploaded is None and current is None:
        st.info("Upload a teacher file, then pick its architecture, class count and dataset. Until "
                "then every page uses the built-in digits teacher.")
        return None
    try:
        root = str(check_allowed(root, "--data-root")) if root else ""
        if uploaded is not None:
            path, digest, name = *_saved_upload(uploaded), uploaded.name
        else:  # the teacher chosen earlier (a refresh, another tab, a server restart)
            path, digest, name = current["path"], current["sha256"], current.get("name", Path(current["path"]).name)
            st.caption(f"Current teacher: `{name}` (sha256 {digest[:12]}…), chosen earlier; upload "
                       "another file to replace it.")
        report = cached_upload(path, digest, arch, num_classes, dataset, root, str(device))
    except InputError as exc:
        show_error(exc, FIELDS)
        if current:
            st.caption(f"The pages keep using the teacher chosen before: `{current.get('name')}`.")
        return None
    record = {"source": "upload", "arch": arch, "path": path, "num_classes": report.num_classes,
              "dataset": dataset, "data_root": root or None, "sha256": digest, "name": name}
    remember_upload(digest, record)
    set_teacher(record)
    return report


def show_report(report: TeacherReport) -> None:
    st.success(report.headline, icon=":material/verified:")
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Test accuracy", f"{report.accuracy:.2f}%", border=True)
    m2.metric("Parameters", f"{report.parameters:,}", border=True)
    m3.metric("Input channels", report.in_channels, border=True)
    m4.metric("Classes", report.num_classes, border=True)
    n_test = int(report.confusion.sum())
    st.caption(f"Evaluated on the {n_test:,} test images of `{report.dataset}`, "
               f"read from: {report.data_source}."
               + ("" if report.source == "builtin" else f" Checkpoint: `{report.source}`."))
    left, right = st.columns(2)
    left.plotly_chart(per_class_figure(report))
    right.plotly_chart(confusion_figure(report))


def render() -> None:
    st.title("Teacher")
    st.write("The classifier whose knowledge is distilled. Use the built-in digits teacher or "
             "upload your own; it is validated, then scored on the dataset's test split.")
    dev = device()
    chosen = chosen_teacher()
    choice = st.radio("Teacher", [BUILTIN, UPLOAD], horizontal=True, key="teacher_choice",
                      index=1 if chosen and chosen.get("source") == "upload" else 0,
                      label_visibility="collapsed")
    report = show_builtin(dev) if choice == BUILTIN else show_upload(dev)
    if report is not None:
        show_report(report)


render()
