"""Starting runs: a batch of configs in the background, a grid of them, a resume, or one run
here in this process (``run_inline``, what ``distill`` without ``--detach`` does).

Whoever starts background runs (the CLI, the dashboard) can exit or restart: the workers, their
heartbeats and checkpoints carry on.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Iterable

from ..common.errors import InputError
from ..common.progress import Progress
from ..distill import Callback, DistillConfig, Distiller, FitResult
from .backends import Backend, get_backend
from .integrity import CHECKPOINT, checkpoint_problem
from .monitor import reconcile
from .recorder import stored_result
from .status import QUEUED, RESUMABLE, StatusConflict
from .store import Run, RunStore
from .submit import submit_new
from .worker import execute


def launch(cfgs: list[DistillConfig], backend: Backend, *, names: list[str | None] | None = None) -> list[str]:
    """Resolve every config first (nothing starts if one is bad), then create and submit runs,
    each with its resolved config."""
    resolved = [cfg.resolve() for cfg in cfgs]
    return submit_new(backend, [cfg.to_dict() for cfg in resolved], names)


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


def resume_plan(run: Run, status: dict) -> str:
    """What a resume of ``run`` will do, in words (the command line prints it)."""
    if run.path(CHECKPOINT).exists():
        return (f"continues from its checkpoint at step {status.get('checkpoint_step')} "
                f"(epoch {status.get('epoch')})")
    return "has no checkpoint (it stopped before its first epoch ended): it restarts from step 0"


def claim_resume(store: RunStore, run_id: str) -> tuple[Run, dict, str]:
    """Make a failed or cancelled run ``queued`` for its resume, under the run's lock, so that of
    two resumes at the same instant one wins and the other is refused (the run is no longer
    resumable), and a cancel after it finds the run queued and wins (the worker starts only a
    run still queued). Returns the run, its status before, and :func:`resume_plan`."""
    reconcile(store)
    run = store.get(run_id)
    with run.lock():
        st = run.status()
        if st.get("status") not in RESUMABLE:
            raise InputError(f"run {run.run_id}: it is {st.get('status')}; only failed or cancelled "
                             "runs can be resumed")
        damage = checkpoint_problem(run.path(CHECKPOINT))
        if damage:
            raise InputError(f"run {run.run_id}: its checkpoint is damaged ({damage}); delete "
                             f"{run.path(CHECKPOINT)} to restart the run from step 0")
        plan = resume_plan(run, st)
        run.path("heartbeat").unlink(missing_ok=True)  # the old worker's last beat is not the new one's
        for tmp in run.root.glob(".*.tmp"):  # half-written files of the killed worker (jsonio)
            tmp.unlink(missing_ok=True)
        run.clear_cancel()
        run.set_status(QUEUED, expect=RESUMABLE, pid=None, error=None, resume_plan=plan)
    return run, st, plan


def resume(store: RunStore, run_id: str, backend: Backend | None = None, *,
           max_concurrent: int | None = None) -> str:
    """Continue a failed or cancelled run from its last checkpoint in a new worker, on the
    backend it ran on (``backend`` overrides it); returns :func:`resume_plan`'s words."""
    run, st, plan = claim_resume(store, run_id)
    try:
        if backend is None:
            backend = get_backend(run_backend(st), store, ray_address=st.get("ray_address"),
                                  max_concurrent=max_concurrent)
        backend.submit(run, resume=True)
    except BaseException as exc:  # no worker started: the run is resumable again, not stuck queued
        try:
            run.set_status(st.get("status"), expect=(QUEUED,), pid=None,
                           error=f"resume could not start a worker: {exc}")
        except StatusConflict:  # cancelled meanwhile: that is its status now
            pass
        raise
    return plan


@dataclass(frozen=True)
class InlineRun:
    """A run done in this process: its id in the run store and the loop's result."""

    run_id: str
    result: FitResult

    def to_json(self) -> dict:
        """The store's record (``result.json``, ``distill --json``)."""
        return stored_result(self.run_id, self.result)


def run_inline(cfg: DistillConfig, *, store: RunStore | None = None, progress: Progress = None,
               callbacks: Iterable[Callback] = (), run_name: str | None = None) -> InlineRun:
    """Run one distillation end to end in this process, recorded in the run store like any
    other run (heartbeats, per-epoch checkpoints, so it can be resumed); returns its id and
    result."""
    store = store or RunStore()
    distiller = Distiller(cfg, progress=progress)  # input errors surface before a run exists
    run = store.create(distiller.cfg.to_dict(), name=run_name)  # the resolved config
    result = execute(run, home=store.home, backend="inline", progress=progress, callbacks=callbacks,
                     distiller=distiller)
    if result is None:
        raise KeyboardInterrupt(f"run {run.run_id} was cancelled")
    return InlineRun(run.run_id, result)
