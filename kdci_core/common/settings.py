"""The operator's ``$KDCI_HOME/settings.toml``: one reader for every setting kept there (the
dashboard's allowed folders, the memory budget for reading files), so a broken file is reported
the same way whichever setting is looked up first."""

from __future__ import annotations

import tomllib
from pathlib import Path

from .errors import InputError
from .paths import kdci_home

SETTINGS = "settings.toml"


def settings_path() -> Path:
    return kdci_home() / SETTINGS


def read_settings() -> dict:
    """The parsed settings file ({} when there is none); an unreadable one is an InputError."""
    path = settings_path()
    if not path.is_file():
        return {}
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: expected a readable TOML file, found {exc}") from None
