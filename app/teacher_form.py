"""The Teacher page's form for a teacher file: its fields' state (filled once per file from the
teacher chosen before or from what the file records), the input fields with where each value
comes from, the gate that keeps a near-chance teacher from silently becoming every page's
teacher, and what the teacher can serve.
"""

from __future__ import annotations

import re

import streamlit as st

from kdci_core.common.errors import InputError
from kdci_core.data.common import MAX_SIZE, MIN_SIZE
from kdci_core.methods.needs import methods_for_teacher
from kdci_core.teachers.input_spec import FIELDS, InputSpec
from kdci_core.teachers.inspect import CHANCE_MARGIN, chance_level, near_chance  # noqa: F401 (the page's names)
from kdci_core.teachers.load import metadata_accuracy

#: the form's session keys (the field -> its widget's key)
KEYS = {"arch": "teacher_arch", "num_classes": "teacher_classes", "dataset": "teacher_dataset",
        "data_root": "teacher_root", "image_size": "teacher_size", "in_channels": "teacher_channels",
        "mean": "teacher_mean", "std": "teacher_std"}
LABELS = {"image_size": "Image size (px)", "in_channels": "Channels", "mean": "Mean", "std": "Std"}
#: engine messages about the input fields -> the page's field names (``--image-size`` from a
#: config, ``image_size:`` from a value checked alone)
INPUT_FIELDS = {**{f"--{k.replace('_', '-')}": f"'{v}'" for k, v in LABELS.items()},
                "--in-channels": "'Channels'"}
_FORM_OF = "_teacher_form_of"

CONFIRM = "Use it anyway"


def fill(identity, values: dict) -> bool:
    """Put ``values`` into the form's fields when the form shows another file than before (or
    Streamlit dropped a field's state, as it does for widgets not drawn on a run); the user's
    later edits are kept. True when it filled."""
    if st.session_state.get(_FORM_OF) == identity and all(k in st.session_state for k in KEYS.values()):
        return False
    for field, key in KEYS.items():
        value = values.get(field)
        if field in ("mean", "std"):
            value = numbers_text(value)
        elif field == "data_root":
            value = value or ""
        st.session_state[key] = value
    st.session_state[_FORM_OF] = identity
    return True


def numbers_text(values) -> str:
    return "" if values is None else ", ".join(f"{v:g}" for v in values)


def parse_numbers(text: str, label: str) -> list[float] | None:
    """'0.5' or '0.485, 0.456, 0.406' -> floats; '' -> None (not given)."""
    items = [t for t in re.split(r"[,\s]+", str(text or "").strip()) if t]
    if not items:
        return None
    try:
        return [float(t) for t in items]
    except ValueError:
        raise InputError(f"'{label}': expected 1 or 3 numbers separated by commas, found "
                         f"{str(text).strip()!r}") from None


def _auto(spec: InputSpec, name: str) -> tuple[str, str]:
    """(the placeholder: the value an empty field takes, its help: where that value comes from)."""
    value = getattr(spec, name)
    if value is None:
        return "the data's own", f"Empty: the dataset's own. {_HELP}"
    shown = numbers_text(value) if isinstance(value, tuple) else str(value)
    return f"{shown} (auto)", f"Empty: {shown}, from {spec.source.get(name)}. {_HELP}"


_HELP = ("An empty field takes the first source that has a value: a sidecar JSON beside the file, "
         "the checkpoint's metadata, an ONNX graph's input, timm's config, else the dataset's own. "
         "A value typed here wins, on this page and in the runs launched with this teacher.")


def input_fields(auto: InputSpec) -> dict:
    """The four input fields, each empty by default with the value it would take (``auto``: the
    spec resolved without the user's values) as its placeholder and where that comes from as its
    help; returns the values the user gave (they win over every other source)."""
    c1, c2, c3, c4 = st.columns(4)
    hint = {name: _auto(auto, name) for name in FIELDS}
    given = {
        "image_size": c1.number_input(LABELS["image_size"], MIN_SIZE, MAX_SIZE, value=None, step=1,
                                      key=KEYS["image_size"], placeholder=hint["image_size"][0],
                                      help=hint["image_size"][1]),
        "in_channels": c2.selectbox(LABELS["in_channels"], [1, 3], index=None, key=KEYS["in_channels"],
                                    placeholder=hint["in_channels"][0], help=hint["in_channels"][1]),
        "mean": parse_numbers(c3.text_input(LABELS["mean"], key=KEYS["mean"], placeholder=hint["mean"][0],
                                            help=hint["mean"][1]), LABELS["mean"]),
        "std": parse_numbers(c4.text_input(LABELS["std"], key=KEYS["std"], placeholder=hint["std"][0],
                                           help=hint["std"][1]), LABELS["std"]),
    }
    return {k: (int(v) if k in ("image_size", "in_channels") and v is not None else v)
            for k, v in given.items()}


def given_message(message: str) -> str:
    """An engine message about a user's input value (``mean: expected ...``) named by its field."""
    for name, label in LABELS.items():
        if message.startswith(f"{name}:"):
            return f"'{label}'" + message[len(name):]
    return message


# --- a teacher near chance ---------------------------------------------------------------------
def near_chance_text(report, recorded: dict) -> str:
    chance = chance_level(report.num_classes)
    named = recorded.get("dataset", (None,))[0]
    other = f" (its {recorded['dataset'][1]} names `{named}`)" if named and named != report.dataset else ""
    was = metadata_accuracy(report.metadata or {})
    was = f"; its metadata records {was:.2f}% where it was trained" if was is not None else ""
    return (f"Test accuracy {report.accuracy:.2f}% on `{report.dataset}` is within {CHANCE_MARGIN:g} "
            f"points of chance ({chance:.2f}% for {report.num_classes} classes): this teacher is barely "
            f"better than guessing here{was}. Likely causes: the wrong dataset{other}, the wrong "
            "normalisation (Mean/Std), the wrong architecture, or the wrong image size. It is not "
            f"made the teacher of the other pages unless you confirm with '{CONFIRM}'.")


def chance_gate(report, key: str, confirmed_before: bool, recorded: dict) -> tuple[bool, bool]:
    """(may it become the pages' teacher, was it confirmed near chance). A teacher near chance
    is shown with a warning and needs the user's click; the click is kept for this file and
    these choices (``key``), also in later sessions (``confirmed_before``)."""
    if not near_chance(report.accuracy, report.num_classes):
        return True, False
    st.warning(near_chance_text(report, recorded), icon=":material/warning:")
    if confirmed_before or st.session_state.get("_teacher_confirmed") == key:
        st.caption("You chose to use it anyway: it is the teacher of every page.")
        return True, True
    if st.button(CONFIRM, key="teacher_use_anyway"):
        st.session_state["_teacher_confirmed"] = key
        return True, True
    return False, False


def serves_note(capabilities) -> None:
    """Which methods this teacher can serve (an ONNX black box: its outputs only; a network
    without BatchNorm: no BN-statistics methods), with each refusal's reason."""
    if not capabilities:
        return
    served = methods_for_teacher(capabilities)
    ok = [m for m, why in served.items() if why is None]
    refused = [f"{m} ({why.split(';')[0]})" for m, why in served.items() if why is not None]
    if not refused:
        st.caption(f"It can serve every method: {', '.join(ok)}.")
        return
    st.info(f"It can serve {', '.join(ok) or 'no method'}; not {'; '.join(refused)}. The Runs "
            "form greys those out.", icon=":material/info:")


def spec_values(spec: InputSpec) -> tuple:
    """The spec as a hashable cache key (size, channels, mean, std)."""
    return tuple(tuple(v) if isinstance(v, (list, tuple)) else v for v in (getattr(spec, f) for f in FIELDS))
