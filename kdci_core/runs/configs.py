"""Stored configs as compared and grouped: one folder is one value, however it was spelled.

The pages store resolved paths; a run launched from a shell may carry the path as typed (a
symlink, ``~``, ``./data``). Comparing or grouping runs by the text would make like runs look
unlike, so every reader that tells configs apart (the run table's groups, the Compare page, the
report) goes through :func:`canonical_config`, which resolves the path fields and leaves the
stored config untouched.
"""

from __future__ import annotations

import json
import os

#: config fields that name a file or folder (``wild_data`` and ``teacher`` only when they are
#: not one of their named values)
PATH_FIELDS = ("teacher", "data_root", "dictionary_source", "wild_data")
#: values of those fields that are names, not paths
_NAMED = {"builtin", "default", ""}
_NAMED_PREFIXES = ("dataset:",)


def canonical_path(value):
    """A path field's value with the folder resolved (``~`` expanded, symlinks followed, made
    absolute); None, the built-in teacher, the default photos and ``dataset:NAME`` unchanged."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.lower() in _NAMED or text.lower().startswith(_NAMED_PREFIXES):
        return value
    return os.path.realpath(os.path.expanduser(text))


def canonical_config(config: dict) -> dict:
    """``config`` with every path field resolved (a copy; the stored config is not changed)."""
    return {k: canonical_path(v) if k in PATH_FIELDS else v for k, v in config.items()}


def value_key(value) -> str:
    """A config value as a hashable, order-independent key (dicts such as ``method_params``)."""
    return json.dumps(value, sort_keys=True, default=str)
