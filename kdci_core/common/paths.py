"""Where the engine keeps its files: ``$KDCI_HOME`` (default ``~/.kdci``).

The run store, the built-in teacher, uploads and the projection cache all live below it, so a
test or a user points the whole engine elsewhere with one environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path


def kdci_home() -> Path:
    """``$KDCI_HOME`` (created when missing), else ``~/.kdci``."""
    home = Path(os.environ.get("KDCI_HOME") or Path.home() / ".kdci").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home
