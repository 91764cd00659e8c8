"""Run ids and run names: an id is a folder name the store generates; a name is the user's label.

A user's name never becomes a path: it lives in the run's status and index row, and every report
escapes it. It is NFC-normalised (a composed and a decomposed "é" are one name) and refused when
it holds control or invisible characters, so two names that print the same are the same name.
"""

from __future__ import annotations

import re
import unicodedata

from ..common.errors import InputError

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
MAX_NAME = 100
#: Unicode categories a label may not hold: controls, format characters (zero-width spaces and
#: joiners, direction marks, the BOM, the soft hyphen), private-use, surrogates, unassigned, and
#: line or paragraph separators
_REFUSED_CATEGORIES = {"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"}
#: letters and symbols that render as nothing (Hangul fillers, the braille blank)
_BLANK_LETTERS = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800"}


def validate_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id) or ".." in run_id:
        raise InputError(f"run id {run_id!r}: expected letters, digits, '-', '_' or '.' "
                         "(no path separators), at most 128 characters")
    return run_id


def is_run_id(text: str) -> bool:
    try:
        validate_run_id(text)
        return True
    except InputError:
        return False


def normal_name(text: str) -> str:
    """A name as stored and looked up: NFC, outer spaces stripped."""
    return unicodedata.normalize("NFC", text).strip()


def validate_run_name(name: str) -> str:
    """The label as stored: NFC, outer spaces stripped; InputError naming the first refused
    character (by code point and Unicode name) or the length."""
    if not isinstance(name, str):
        raise InputError(f"run name: expected text, found {type(name).__name__}")
    label = normal_name(name)
    if not label:
        raise InputError(f"run name {name!r}: expected at least one visible character, found none")
    if len(label) > MAX_NAME:
        raise InputError(f"run name: expected at most {MAX_NAME} characters, found {len(label)}")
    for ch in label:
        cat = unicodedata.category(ch)
        if cat in _REFUSED_CATEGORIES or ch in _BLANK_LETTERS or (cat == "Zs" and ch != " "):
            what = unicodedata.name(ch, "unnamed")
            raise InputError(f"run name {label!r}: expected printable characters, found "
                             f"U+{ord(ch):04X} ({what}), a control or invisible character")
    return label
