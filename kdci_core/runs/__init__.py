"""Runs: the on-disk run store, its index, the status vocabulary, the recorder callbacks, the
worker, launching and resuming, the monitor, and the backends that start workers.

- ``status``: ``STATUSES``, ``ACTIVE``, ``TERMINAL``, ``RESUMABLE``;
- ``store`` / ``index``: one folder per run under ``$KDCI_HOME/runs`` plus a SQLite index;
- ``recorder``: loop callbacks committing checkpoint, metrics, status, result and figures;
- ``worker``: ``execute`` (what every backend runs), with slots and a heartbeat;
- ``launcher``: ``launch``, ``launch_grid``, ``resume`` (on the run's own backend), ``run_inline``;
- ``monitor``: ``reconcile`` (dead workers), ``cancel``, ``wait_for``;
- ``backends``: ``local`` and ``ray``, one :class:`~.backends.Backend` interface.
"""

from .backends import BACKENDS, Backend, LocalBackend, default_concurrency, get_backend
from .launcher import launch, launch_grid, resume, run_inline
from .monitor import STALE_S, cancel, pid_alive, reconcile, wait_for
from .recorder import CHECKPOINT, Cancelled
from .status import ACTIVE, RESUMABLE, STATUSES, TERMINAL
from .store import Run, RunStore, run_label, validate_run_id
from .worker import execute, execute_by_id

__all__ = ["ACTIVE", "BACKENDS", "Backend", "CHECKPOINT", "Cancelled", "LocalBackend", "RESUMABLE",
           "Run", "RunStore", "STALE_S", "STATUSES", "TERMINAL", "cancel", "default_concurrency",
           "execute", "execute_by_id", "get_backend", "launch", "launch_grid", "pid_alive",
           "reconcile", "resume", "run_inline", "run_label", "validate_run_id", "wait_for"]
