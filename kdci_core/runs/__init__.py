"""Runs: the on-disk run store, its index, the status vocabulary, the recorder callbacks, the
worker, launching and resuming, the monitor, and the backends that start workers.

- ``status``: ``STATUSES``, ``ACTIVE``, ``TERMINAL``, ``RESUMABLE``, ``CORRUPT`` (listed only),
  ``TRANSITIONS`` (the one state machine; ``StatusConflict`` when a change is refused);
- ``store`` / ``index``: one folder per run under ``$KDCI_HOME/runs`` plus a SQLite index (a
  cache: rebuilt when damaged, kept in memory when the disk refuses it); ``locks``, ``reserve``;
- ``recorder``: loop callbacks committing checkpoint, metrics, status, result and figures;
  ``system``: CPU, memory and CUDA memory added to every epoch's record; ``collapse``: a
  student predicting one class for most test images, flagged from its prediction histogram;
- ``table``: the run table's rows and groups (never mixing teachers, datasets, schedules);
  ``configs``: configs as compared (paths resolved); ``tensorboard``: event-file export;
- ``worker``: ``execute`` (what every backend runs), with slots and a heartbeat;
- ``launcher``: ``launch``, ``launch_grid``, ``resume`` (on the run's own backend), ``run_inline``;
- ``monitor``: ``reconcile`` (dead workers), ``cancel``, ``wait_for``;
- ``backends``: ``local`` and ``ray``, one :class:`~.backends.Backend` interface.
"""

from importlib import import_module

#: public name -> the module that defines it. Imported on first use (PEP 562), so listing runs
#: (``store``, ``monitor``, ``status``: no torch) does not load the loop that running them needs.
_WHERE = {
    "BACKENDS": "backends", "Backend": "backends", "LocalBackend": "backends",
    "default_concurrency": "backends", "get_backend": "backends",
    "launch": "launcher", "launch_grid": "launcher", "resume": "launcher",
    "claim_resume": "launcher", "run_inline": "launcher",
    "STALE_S": "monitor", "cancel": "monitor", "pid_alive": "monitor", "reconcile": "monitor",
    "wait_for": "monitor",
    "CHECKPOINT": "recorder", "Cancelled": "recorder",
    "ACTIVE": "status", "CORRUPT": "status", "LISTED": "status", "RESUMABLE": "status",
    "STATUSES": "status", "TERMINAL": "status", "TRANSITIONS": "status", "StatusConflict": "status",
    "Run": "store", "RunStore": "store", "run_label": "store", "validate_run_id": "store",
    "validate_run_name": "store",
    "execute": "worker", "execute_by_id": "worker",
    "export_student": "export",
    "export_tensorboard": "tensorboard",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value
