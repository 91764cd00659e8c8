"""One architecture field for every page that names a model (the Teacher page's architecture,
the Runs form's student): a searchable list of the three sources (this project's zoo, ``tv:NAME``
torchvision classifiers, ``timm:NAME`` timm models) that also takes a typed name, checked with
the engine's ``check_arch`` so a misspelt one is refused with its close matches.

The option list never changes while a page lives: Streamlit counts a selectbox's options in its
identity, and a changed list would drop the user's choice. A typed name that is not in the list
is kept by the widget itself (``accept_new_options``).
"""

from __future__ import annotations

import streamlit as st

from kdci_core.models import arch_choices, check_arch

#: what the list holds, for the field's help text
SOURCES_HELP = ("Search by typing. The list holds this project's zoo (bare names: lenet5, resnet18 "
                "is the CIFAR variant, ...), every torchvision classifier as tv:NAME "
                "(tv:resnet18) and every timm model as timm:NAME (timm:resnet10t). A name not "
                "in the list can be typed and entered; it is checked, and a wrong one is "
                "refused with the closest names. Weights come only from your file: nothing is "
                "downloaded.")


@st.cache_resource(show_spinner="Listing the zoo, torchvision and timm architectures…")
def arch_options() -> list[str]:
    """Every accepted name, the zoo first, then ``tv:``, then ``timm:`` (each sorted)."""
    groups = arch_choices()
    return [*groups["zoo"], *groups["tv"], *groups["timm"]]


def arch_select(label: str, key: str, *, disabled: bool = False, placeholder: str = "Choose or type a name",
                help: str = SOURCES_HELP) -> str | None:
    """The field, drawn; returns the chosen name (None: none chosen). Its default is whatever the
    page put in ``st.session_state[key]`` before drawing it."""
    return st.selectbox(label, arch_options(), index=None, key=key, accept_new_options=True,
                        disabled=disabled, placeholder=placeholder, help=help)


def checked_arch(name: str | None, field: str) -> str | None:
    """``name`` when it is an accepted architecture (None stays None); else an InputError that
    names ``field`` and lists the close matches."""
    if name is None or not str(name).strip():
        return None
    return check_arch(str(name).strip(), field)
