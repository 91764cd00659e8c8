"""Background runs: a worker entry point (``worker.py``) shared by the local process backend
(``local.py``, the default) and the Ray backend (``ray_backend.py``), plus batch launch.

Runs live in the run store; a backend only starts workers. Whoever starts them (the CLI, the
dashboard) can exit or restart: the workers, their heartbeats and checkpoints carry on.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from ..config import DistillConfig
from ..errors import InputError
from ..runstore import RunStore
from .local import LocalBackend, cancel, reconcile, wait_for

BACKENDS = ("local", "ray")

__all__ = ["BACKENDS", "LocalBackend", "cancel", "get_backend", "launch", "launch_grid",
           "reconcile", "resume", "wait_for"]


def get_backend(name: str = "local", store: RunStore | None = None, *, ray_address: str | None = None,
                max_concurrent: int | None = None):
    store = store or RunStore()
    if name == "local":
        return LocalBackend(store, max_concurrent)
    if name == "ray":
        from .ray_backend import RayBackend
        return RayBackend(store, address=ray_address)
    raise InputError(f"backend: expected one of {', '.join(BACKENDS)}, found {name!r}")


def launch(cfgs: list[DistillConfig], backend, *, names: list[str | None] | None = None) -> list[str]:
    """Validate every config first (nothing starts if one is bad), then create and submit runs."""
    for cfg in cfgs:
        cfg.validate()
    ids = []
    for cfg, name in zip(cfgs, names or [None] * len(cfgs)):
        run = backend.store.create(cfg.to_dict(), name=name)
        backend.submit(run)
        ids.append(run.run_id)
    return ids


def launch_grid(base: DistillConfig, backend, *, methods=None, kdci=(True, False), seeds=(0,)) -> list[str]:
    """Methods x KDCI on/off x seeds of one base config, as separate runs."""
    methods = list(methods or [base.method])
    if not methods or not list(kdci) or not list(seeds):
        raise InputError("launch: expected at least one method, one KDCI setting and one seed")
    cfgs = [replace(base, method=m, kdci=bool(k), seed=int(s))
            for m, k, s in itertools.product(methods, kdci, seeds)]
    return launch(cfgs, backend)


def resume(store: RunStore, run_id: str, backend) -> str:
    """Continue a failed or cancelled run from its last checkpoint in a new worker."""
    reconcile(store)
    run = store.get(run_id)
    status = run.status().get("status")
    if status not in ("failed", "cancelled"):
        raise InputError(f"run {run_id}: it is {status}; only failed or cancelled runs can be resumed")
    run.clear_cancel()
    backend.submit(run, resume=True)
    return run_id
