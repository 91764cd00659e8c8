"""Teacher page: use the built-in digits teacher or validate an uploaded one (a checkpoint of a
zoo, torchvision or timm architecture, or a black-box ONNX graph), then show its parameters, test
accuracy, per-class accuracy and confusion matrix (ACCEPTANCE 4.1).

What the file records about itself (its sidecar JSON, our checkpoints' metadata: dataset,
architecture, classes, input) fills the form, so a teacher is scored on the data it was trained
on; with no architecture chosen the file's layers suggest one; a teacher whose accuracy is near
chance is not made every page's teacher until the user confirms.

Presentation only: loading, validation and scoring are ``kdci_core.teachers`` calls (the
``TeacherReport`` that ``kdci teacher inspect`` prints); expensive results are cached with
``st.cache_resource``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
import torch

from app.arch_field import arch_select, checked_arch
from app.shared import ProgressBar, chosen_teacher, device, set_teacher, show_error
from app.teacher_form import (INPUT_FIELDS, KEYS, chance_gate, fill, given_message, input_fields,
                              serves_note, spec_values)
from app.teacher_meta import describe_recorded, recorded_fields, save_sidecar
from kdci_core.common.allowed_paths import check_allowed
from kdci_core.common.errors import InputError
from kdci_core.data import dataset_names, load_dataset
from kdci_core.figures.teacher import confusion_figure, per_class_figure
from kdci_core.models import MAX_CHECKPOINT_BYTES
from kdci_core.teachers import (BUILTIN_DATASET, ONNX_ARCH, UPLOAD_TYPES, InputSpec, TeacherReport,
                                builtin_report, builtin_teacher, builtin_teacher_path,
                                check_upload_size, file_digest, inspect_checkpoint, is_onnx_path,
                                read_state_dict, remember_upload, resolve_input_spec, save_upload,
                                suggest_archs)
from kdci_core.teachers.input_spec import FIELDS as SPEC_FIELDS
from kdci_core.teachers.suggest import candidates, checkpoint_channels

BUILTIN, UPLOAD = "Built-in digits teacher", "Upload a checkpoint"
#: engine names (the CLI's flags) -> this page's fields, for its error messages
FIELDS = {"--arch": "'Architecture'", "--teacher-arch": "'Architecture'", "--num-classes": "'Classes'",
          "--dataset": "'Dataset'", "--data-root": "'Data root (optional)'",
          "--teacher": "the teacher checkpoint", **INPUT_FIELDS}
NATIVE = (None,) * len(SPEC_FIELDS)
FIRST_CONV = "first convolution"


@st.cache_resource(show_spinner="Loading dataset…", max_entries=8)
def cached_dataset(name: str, root: str, spec: tuple = NATIVE):
    """A dataset at an input spec (size, channels, mean, std; None: its own), loaded once."""
    return load_dataset(name, root or None, **dict(zip(SPEC_FIELDS, spec)))


@st.cache_resource(show_spinner="Evaluating the built-in teacher…", max_entries=4)
def cached_builtin(device: str, digest: str) -> TeacherReport:
    """The built-in teacher's report; ``digest`` keys it to the file on disk."""
    return builtin_report(device, data=cached_dataset(BUILTIN_DATASET, ""))


@st.cache_resource(show_spinner="Validating and evaluating the teacher…", max_entries=8)
def cached_upload(path: str, digest: str, arch: str | None, num_classes: int | None, dataset: str,
                  root: str, spec: tuple, device: str) -> TeacherReport:
    """An uploaded teacher's report, keyed by file content and every choice that affects it."""
    data = cached_dataset(dataset, root, spec)
    return inspect_checkpoint(path, arch, num_classes or (None if arch is None else data.info.num_classes),
                              dataset, root, device=device, data=data)


@st.cache_resource(show_spinner="Comparing the file's layers with common architectures…", max_entries=16)
def cached_suggestions(path: str, digest: str) -> list[str]:
    return suggest_archs(read_state_dict(path)[0])


@st.cache_resource(show_spinner=False, max_entries=16)
def cached_file_channels(path: str, digest: str, arch: str) -> int | None:
    """The input channels the checkpoint's first convolution takes (None: it cannot say)."""
    return checkpoint_channels(read_state_dict(path)[0], arch)


def _train_builtin_with_progress() -> None:
    """First use: train the built-in teacher with a live progress bar (later uses load it)."""
    bar = ProgressBar("Training the built-in teacher on digits (first use only)…")
    builtin_teacher(device=torch.device("cpu"), progress=bar)
    bar.empty()


def show_builtin(device: torch.device) -> TeacherReport | None:
    st.caption(f"A `lenet5` trained on scikit-learn's bundled 8x8 digits the first time "
               f"it is needed, then cached at `{builtin_teacher_path()}`.")
    try:
        if not builtin_teacher_path().exists():
            _train_builtin_with_progress()
        report = cached_builtin(str(device), file_digest(builtin_teacher_path()))
    except InputError as exc:
        show_error(exc, FIELDS)
        return None
    set_teacher({"source": "builtin", "arch": report.arch, "path": "builtin",
                 "num_classes": report.num_classes, "dataset": report.dataset,
                 "capabilities": report.capabilities})
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


def _saved_sidecar(sidecar, path: str) -> None:
    """An uploaded sidecar written beside the stored teacher, once per (sidecar, teacher)."""
    if st.session_state.get("_teacher_sidecar") != (sidecar.file_id, path):
        save_sidecar(path, sidecar.name, sidecar.getvalue())
        st.session_state["_teacher_sidecar"] = (sidecar.file_id, path)


def _form_values(current: dict | None, digest: str | None, recorded: dict) -> tuple[dict, tuple | None]:
    """What the form starts with for this file, and a note saying what came from the file: the
    teacher chosen before when it is this file, else what the file records over the form's
    present dataset and data root. The note is (what was filled, the dataset switch or ''):
    the switch is said only while the form still shows the switched-to dataset."""
    if current and digest == current.get("sha256") and not st.session_state.get("teacher_sidecar"):
        return {**current, "arch": None if current.get("arch") == ONNX_ARCH else current.get("arch"),
                "in_channels": None if current.get("in_channels_from") else current.get("in_channels")}, None
    before = st.session_state.get(KEYS["dataset"]) or BUILTIN_DATASET
    values = {"dataset": before, "data_root": st.session_state.get(KEYS["data_root"]) or ""}
    if not recorded:
        return values, None
    where = sorted({label for _, label in recorded.values()})
    note = f"Filled from what the file records ({'; '.join(where)}): {describe_recorded(recorded)}."
    values["num_classes"] = recorded.get("num_classes", (None,))[0]
    arch = recorded.get("arch", (None,))[0]
    if arch is not None:
        values["arch"], error = _known(arch)
        note += f" Its architecture {error}" if error else ""
    named = recorded.get("dataset", (None,))[0]
    if named in dataset_names():
        values["dataset"] = named
        if named != before:
            values["data_root"] = ""
            return values, (note, f"The form said `{before}`; the teacher is validated on `{named}`, "
                                  f"the dataset its {recorded['dataset'][1]} names.")
    elif named is not None:
        note += (f" Its {recorded['dataset'][1]} names the dataset `{named}`, which this dashboard "
                 "cannot load by name: choose the data it was trained on (a folder of images: "
                 "`folder` and its Data root).")
    return values, (note, "")


def _known(arch: str) -> tuple[str | None, str | None]:
    try:
        return checked_arch(arch, "architecture"), None
    except InputError as exc:
        return None, f"`{arch}` is not one this dashboard knows ({exc}): choose it in 'Architecture'."


def _suggested(path: str, digest: str) -> str | None:
    """With no architecture chosen: the single architecture whose layers the file has (said so),
    else None with the matches (or none) named."""
    found = cached_suggestions(path, digest)
    if len(found) == 1:
        st.info(f"No architecture chosen: the file's layers match `{found[0]}` and no other of the "
                f"{len(candidates())} common architectures searched, so it is used.",
                icon=":material/search:")
        return found[0]
    if found:
        st.info(f"No architecture chosen: the file's layers match {', '.join(f'`{n}`' for n in found)}; "
                "choose one of them in 'Architecture'.", icon=":material/search:")
    else:
        st.info(f"No architecture chosen, and the file's layers match none of the {len(candidates())} "
                "common architectures searched (the zoo, common torchvision and timm classifiers): "
                "choose or type its architecture in 'Architecture'.", icon=":material/search:")
    return None


def _file(uploaded, sidecar, current) -> tuple[str, str, str, dict] | None:
    """(path, sha256, name, what it records) of the file the form is about: a new upload, else
    the teacher chosen earlier (a refresh, another tab, a server restart); None: no file."""
    if uploaded is not None:
        path, digest = _saved_upload(uploaded)
        name = uploaded.name
    elif current:
        path, digest = current["path"], current["sha256"]
        name = current.get("name", Path(path).name)
    else:
        return None
    if sidecar is not None:
        _saved_sidecar(sidecar, path)
    return path, digest, name, recorded_fields(path)


def show_upload(device: torch.device) -> TeacherReport | None:
    current = chosen_teacher()
    current = current if current and current.get("source") == "upload" else None
    uploaded = st.file_uploader(
        "Teacher checkpoint", type=UPLOAD_TYPES,
        help=f".safetensors, a .pt/.pth state dict (loaded weights-only) or an .onnx graph (a black "
             f"box: its outputs only); at most {MAX_CHECKPOINT_BYTES >> 20} MiB. Files that would "
             "run code are refused: pickles with code, TorchScript and torch.export archives; save "
             "the weights instead (`torch.save(model.state_dict(), path)`). Stored by content "
             "(sha256), never overwritten.")
    sidecar = None  # asked for on demand: one file picker on the page unless the user wants two
    if st.toggle("Add its sidecar JSON", key="teacher_sidecar_on",
                 help="a sidecar says what your file cannot say itself (a .pt/.pth file, a model "
                      "of your own script): its input size, channels, normalisation, classes, "
                      "architecture and dataset"):
        sidecar = st.file_uploader(
            "Sidecar JSON (optional)", type=["json"], key="teacher_sidecar",
            help="{\"image_size\": 32, \"in_channels\": 3, \"mean\": [...], \"std\": [...], "
                 "\"num_classes\": 10, \"arch\": \"tv:resnet18\", \"dataset\": \"folder\"} (every "
                 "key optional). Stored beside the teacher, where runs and the command line read it too.")
    problem, file = None, None
    try:
        file = _file(uploaded, sidecar, current)
    except InputError as exc:
        problem = exc
    path, digest, name, recorded = file or (None, None, None, {})
    values, note = _form_values(current, digest, recorded)
    if fill((digest, st.session_state.get("_teacher_sidecar")), values):
        st.session_state["_teacher_note"] = note
    onnx = path is not None and is_onnx_path(path)
    c1, c2, c3 = st.columns(3)
    with c1:
        arch_name = arch_select("Architecture", KEYS["arch"], disabled=onnx,
                                placeholder="none: suggested from the file's layers")
    if onnx:
        c1.caption("An ONNX graph is its own architecture: nothing to choose.")
    num_classes = c2.number_input("Classes", min_value=2, max_value=100_000, value=None, step=1,
                                  key=KEYS["num_classes"], placeholder="empty: the dataset's")
    dataset = c3.selectbox("Dataset", dataset_names(), key=KEYS["dataset"])
    root = st.text_input("Data root (optional)", key=KEYS["data_root"],
                         placeholder="folder with the dataset's files; empty: the default location",
                         help="only under the folders the operator allows (an error lists them)").strip()
    if file is None and problem is None:
        input_fields(InputSpec())
        st.info("Upload a teacher file, then pick its architecture, class count and dataset. Until "
                "then every page uses the built-in digits teacher.")
        return None
    if st.session_state.get("_teacher_note"):  # the dataset switch, while the form still says so
        note, switched = st.session_state["_teacher_note"]
        shown = f"{note} {switched}" if switched and f"validated on `{dataset}`" in switched else note
        st.info(shown, icon=":material/description:")
    return _validate(device, current, file, problem, onnx, arch_name, num_classes, dataset, root)


def _spec(given: dict, file, arch: str | None, dataset: str, root: str, onnx: bool) -> InputSpec:
    """The teacher's input: the user's values, then the file's own sources (``resolve_input_spec``).
    When none of them gives the channels and the data's differ from what the checkpoint's first
    convolution takes (a user's RGB network, images that are grey), the checkpoint says: the
    images are given that many channels."""
    path, digest, name, _ = file
    spec = resolve_input_spec(**given, teacher=path, teacher_arch=arch, dataset=dataset)
    if spec.in_channels is not None or arch is None or onnx:
        return spec
    channels = cached_file_channels(path, digest, arch)
    if not channels or channels == cached_dataset(dataset, root, spec_values(spec)).info.in_channels:
        return spec
    spec = resolve_input_spec(**{**given, "in_channels": channels}, teacher=path, teacher_arch=arch,
                              dataset=dataset)
    spec.source["in_channels"] = f"{FIRST_CONV} of {name}"
    return spec


def _validate(device, current, file, problem, onnx, arch_name, num_classes, dataset, root):
    """Draw the input fields, then validate and score the teacher; make it every page's teacher
    unless its accuracy is near chance and the user has not confirmed."""
    spec, arch = None, None
    try:
        if problem is not None:
            raise problem
        path, digest, name, recorded = file
        if current and current.get("sha256") == digest:
            st.caption(f"Current teacher: `{name}` (sha256 {digest[:12]}…), chosen earlier; upload "
                       "another file to replace it.")
        root = str(check_allowed(root, "--data-root")) if root else ""
        arch = None if onnx else checked_arch(arch_name, "'Architecture'")
        auto = _spec({}, file, arch, dataset, root, onnx)
    except InputError as exc:
        problem, auto = exc, InputSpec()
    try:
        given = input_fields(auto)
    except InputError as exc:
        problem, given = problem or exc, {}
    try:
        if problem is not None:
            raise problem
        if arch is None and not onnx:
            arch = _suggested(path, digest)
            if arch is None:
                return None
        spec = _spec(given, file, arch, dataset, root, onnx)
        report = cached_upload(path, digest, arch, num_classes, dataset, root, spec_values(spec),
                               str(device))
    except InputError as exc:
        show_error(given_message(str(exc)), FIELDS)
        if current:
            st.caption(f"The pages keep using the teacher chosen before: `{current.get('name')}`.")
        return None
    info = cached_dataset(dataset, root, spec_values(spec)).info
    st.caption(f"Input as validated: {spec.completed(info).describe()}.")
    key = f"{digest}|{arch}|{dataset}|{root}|{spec_values(spec)}"
    allowed, confirmed = chance_gate(report, key, bool(current and current.get("near_chance_confirmed") == key),
                                     recorded)
    if not allowed:
        kept = f"`{current.get('name')}`" if current else "the built-in digits teacher"
        st.caption(f"The other pages keep using {kept}.")
        return report
    record = {"source": "upload", "arch": arch or ONNX_ARCH, "path": path, "num_classes": report.num_classes,
              "dataset": dataset, "data_root": root or None, "sha256": digest, "name": name,
              "capabilities": report.capabilities, "accuracy": report.accuracy,
              **{k: v for k, v in given.items() if v is not None}}
    if spec.source.get("in_channels", "").startswith(FIRST_CONV):  # runs need it said
        record["in_channels"], record["in_channels_from"] = spec.in_channels, FIRST_CONV
    if confirmed:
        record["near_chance_confirmed"] = key
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
    serves_note(report.capabilities)
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
