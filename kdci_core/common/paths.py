"""Where the engine keeps its files: ``$KDCI_HOME`` (default ``~/.kdci``).

The run store, the built-in teacher, uploads and the projection cache all live below it, so a
test or a user points the whole engine elsewhere with one environment variable.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def kdci_home() -> Path:
    """``$KDCI_HOME`` (created when missing), else ``~/.kdci``."""
    home = Path(os.environ.get("KDCI_HOME") or Path.home() / ".kdci").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def file_sha256(path) -> str | None:
    """The sha256 of a file's bytes, read in chunks (None when there is no such file): what
    identifies a teacher or an exported student, whatever its name."""
    p = Path(path)
    if not p.is_file():
        return None
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
