"""Starting runs: a batch of configs in the background, a grid of them, a resume, or one run
here in this process (``run_inline``, what ``distill`` without ``--detach`` does).

Whoever starts background runs (the CLI, the dashboard) can exit or restart: the workers, their
heartbeats and checkpoints carry on.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Iterable

from ..common.errors import InputError
from ..common.progress import Progress
from ..distill import Callback, DistillConfig, Distiller
from .backends import Backend, get_backend
from .monitor import reconcile
from .status import RESUMABLE
from .store import RunStore
from .worker import execute


def launch(cfgs: list[DistillConfig], backend: Backend, *, names: list[str | None] | None = None) -> list[str]:
    """Validate every config first (nothing starts if one is bad), then create and submit runs."""
    for cfg in cfgs:
        cfg.validate()
    ids = []
    for cfg, name in zip(cfgs, names or [None] * len(cfgs)):
        run = backend.store.create(cfg.to_dict(), name=name)
        backend.submit(run)
        ids.append(run.run_id)
    return ids


def launch_grid(base: DistillConfig, backend: Backend, *, methods=None, kdci=(True, False),
                seeds=(0,)) -> list[str]:
    """Methods x KDCI on/off x seeds of one base config, as separate runs."""
    methods = list(methods or [base.method])
    if not methods or not list(kdci) or not list(seeds):
        raise InputError("launch: expected at least one method, one KDCI setting and one seed")
    cfgs = [replace(base, method=m, kdci=bool(k), seed=int(s))
            for m, k, s in itertools.product(methods, kdci, seeds)]
    return launch(cfgs, backend)


def run_backend(status: dict) -> str:
    """The backend a run resumes on: the one it ran on (an in-process run resumes locally)."""
    return "ray" if status.get("backend") == "ray" else "local"


def resume(store: RunStore, run_id: str, backend: Backend | None = None, *,
           max_concurrent: int | None = None) -> str:
    """Continue a failed or cancelled run from its last checkpoint in a new worker, on the
    backend it ran on (``backend`` overrides it)."""
    reconcile(store)
    run = store.get(run_id)
    st = run.status()
    if st.get("status") not in RESUMABLE:
        raise InputError(f"run {run_id}: it is {st.get('status')}; only failed or cancelled runs can be resumed")
    if backend is None:
        backend = get_backend(run_backend(st), store, ray_address=st.get("ray_address"),
                              max_concurrent=max_concurrent)
    run.clear_cancel()
    backend.submit(run, resume=True)
    return run_id


def run_inline(cfg: DistillConfig, *, store: RunStore | None = None, progress: Progress = None,
               callbacks: Iterable[Callback] = (), run_name: str | None = None) -> dict:
    """Run one distillation end to end in this process, recorded in the run store like any
    other run (heartbeats, per-epoch checkpoints, so it can be resumed); returns the result."""
    store = store or RunStore()
    distiller = Distiller(cfg, progress=progress)  # input errors surface before a run exists
    run = store.create(cfg.to_dict(), name=run_name)
    result = execute(run, home=store.home, backend="inline", progress=progress, callbacks=callbacks,
                     distiller=distiller)
    if result is None:
        raise KeyboardInterrupt(f"run {run.run_id} was cancelled")
    return result
