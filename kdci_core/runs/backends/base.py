"""The interface every backend implements: start a worker for a stored run.

A backend only starts workers; the run, its records and its status live in the run store, and
the worker (``runs.worker.execute``) is the same whichever backend started it. So listing,
cancelling and monitoring need no backend (``runs.monitor``), and a run resumes on the backend it
was launched on (recorded in its status).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

from ..store import Run, RunStore

#: the folder that holds the ``kdci_core`` package this process runs (put on a worker's
#: PYTHONPATH, so the worker runs the same code as its launcher even from an uninstalled checkout)
PACKAGE_ROOT = Path(__file__).resolve().parents[3]


def package_env(store: RunStore) -> dict:
    """Environment a worker needs: the run store's home and this package on its import path."""
    return {"KDCI_HOME": str(store.home),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}


class Backend(ABC):
    """Starts workers for runs of ``store``."""

    name: str = ""
    store: RunStore

    @abstractmethod
    def submit(self, run: Run, *, resume: bool = False):
        """Start a worker for ``run`` (``resume``: from its last checkpoint) and return at once
        with the worker's handle (a pid, an actor name); the run is left ``queued``."""
