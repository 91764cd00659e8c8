"""The worker entry point every backend runs: one stored run, executed in this process.

It waits for a concurrency slot (queued), then runs the distillation loop with the run's
recorder callbacks (checkpoint, metrics and status after every epoch, cancel checks, the result
and figures at the end) and a heartbeat thread, and leaves the run ``finished``, ``failed`` or
``cancelled`` whatever happens. The same function runs in a local detached process
(``python -m kdci_core worker RUN_ID``) and inside a Ray actor.

A worker starts only a run that is still ``queued`` (checked under the run's lock, with the cancel
flag, before ``running``): a cancel that came first wins, whenever the worker or actor starts.
Its end goes to ``status.json``; when the disk refuses that, over the bytes of the run's reserve
(reserve.py) for the monitor to apply.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

from ..common.errors import InputError, StorageError
from ..common.progress import Progress
from ..distill import Callback, DistillConfig, Distiller, FitResult, StepProgress, load_state
from . import reserve
from .recorder import CHECKPOINT, CancelCheck, Cancelled, Heartbeat, recorders, stored_result
from .worklog import ProgressLog, warnings_logged, worker_log_line
from .status import ACTIVE, CANCELLED, FAILED, FINISHED, QUEUED, RUNNING, StatusConflict
from .queue import live_ahead
from .store import Run, RunStore


@contextmanager
def slot(home: Path, slots: int | None, run: Run):
    """Hold one of ``slots`` lock files for the run's duration (None: no limit)."""
    if not slots:
        yield
        return
    folder = home / "slots"
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        if run.index is not None and live_ahead(run.index, run.run_id, _heartbeat_in(run)) >= slots:
            run.heartbeat()  # older runs first (queue.py): wait for them to take the slots
            if run.cancel_requested():
                raise Cancelled("cancelled while queued")
            time.sleep(0.5)
            continue
        for i in range(slots):
            f = open(folder / f"slot-{i}.lock", "w")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
                f.close()
            return
        if run.cancel_requested():
            raise Cancelled("cancelled while queued")
        run.heartbeat()
        time.sleep(0.5)


def _heartbeat_in(run: Run):
    """The last heartbeat of another run of the same store, by id."""
    return lambda run_id: Run(run.root.parent / run_id).last_heartbeat()


def restore_point(run: Run) -> dict | None:
    """The checkpoint a resume continues from (None: there is none yet), with the run's metrics
    rewritten to the checkpoint's own history: records past it are dropped, none is missing."""
    if not run.path(CHECKPOINT).exists():
        worker_log_line(run, "resume: no checkpoint yet (the run stopped before its first epoch "
                             "ended); starting from step 0")
        run.write_metrics([])
        run.write_steps([])
        return None
    state = load_state(run.path(CHECKPOINT))
    run.write_metrics(list(state["history"]))
    run.write_steps([r for r in run.steps() if r.get("step", 0) <= state["step"]])
    worker_log_line(run, f"resume: from the checkpoint at step {state['step']} "
                         f"(epoch {len(state['history'])})")
    return state


def execute(run: Run, *, home: Path | None = None, resume: bool = False, slots: int | None = None,
            backend: str = "local", progress: Progress = None, callbacks: Iterable[Callback] = (),
            distiller: Distiller | None = None) -> FitResult | None:
    """Run ``run`` (its stored config) here; returns the result, or None if it was cancelled
    (or was no longer queued when this worker started: cancelled, or claimed by another).

    ``callbacks`` follow the run's recorders (so they see each epoch after it is committed);
    ``distiller``: one already built from the same config (``run_inline`` builds it first so
    that bad input is rejected before a run exists)."""
    home = Path(home) if home is not None else run.root.parent.parent
    previous = signal.signal(signal.SIGTERM, _raise_cancelled) \
        if threading.current_thread() is threading.main_thread() else None
    try:
        reserve.prepare(run.root)
        try:  # only a run still queued is this worker's (a cancel may have come first)
            run.set_status(QUEUED, expect=(QUEUED,), pid=os.getpid(), host=socket.gethostname(),
                           backend=backend)
        except StatusConflict as exc:
            worker_log_line(run, f"worker {os.getpid()} not started: {exc}")
            return None
        worker_log_line(run, f"worker {os.getpid()} on {socket.gethostname()} ({backend}): "
                             + (f"waiting for one of {slots} slots" if slots else "starting"))
        with warnings_logged(run, echo=backend != "local"):  # a local worker's stderr is the log
            return _work(run, home, resume, slots, progress, callbacks, distiller)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        _sweep(run)


def _work(run: Run, home: Path, resume: bool, slots: int | None, progress: Progress,
          callbacks: Iterable[Callback], distiller: Distiller | None) -> FitResult | None:
    """The worker's life after its start, ending the run ``finished``, ``failed`` or
    ``cancelled`` whatever happens (:func:`_end`)."""
    try:
        with Heartbeat(run), slot(home, slots, run):
            state = restore_point(run) if resume else None
            with run.lock():  # running only if still queued and not asked to cancel meanwhile
                if run.cancel_requested():
                    raise Cancelled("cancel requested before the loop started")
                run.set_status(RUNNING, expect=(QUEUED,), pid=os.getpid(), error=None, traceback=None,
                               resumed_from_step=state["step"] if state else None, started_at=time.time(),
                               restarted_from_scratch=bool(resume and state is None))
            worker_log_line(run, "running: loading the data and the teacher, preparing the method")
            records = recorders(run)
            checked = next(cb for cb in records if isinstance(cb, CancelCheck)).wrap(ProgressLog(run, progress))
            if distiller is None:
                distiller = Distiller(DistillConfig.from_dict(run.config()), progress=checked)
            else:
                distiller.set_progress(checked)
            result = distiller.fit(resume=state, callbacks=[StepProgress(progress), *records, *callbacks])
            _end(run, FINISHED, finished_at=time.time())
            return result
    except Cancelled as exc:
        _end(run, CANCELLED, error=f"cancelled: {exc}")
    except KeyboardInterrupt:
        _end(run, CANCELLED, error="cancelled: interrupted")
        raise
    except StatusConflict as exc:  # the run moved on without this worker (cancelled, declared lost)
        worker_log_line(run, f"worker {os.getpid()} stopped: {exc}")
    except StorageError as exc:
        _end(run, FAILED, error=f"storage: {exc}")
        raise
    except InputError as exc:
        _end(run, FAILED, error=f"rejected input: {exc}")
        raise
    except BaseException as exc:
        _end(run, FAILED, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=8))
        raise
    return None


def _end(run: Run, status: str, **fields) -> None:
    """Leave the run ``status``. A newer status (a cancel, the monitor's verdict) is kept; a
    status the disk refuses (full) goes into the run's reserve, over bytes it already has, for
    the monitor to apply, and into ``worker.log`` when there is room."""
    worker_log_line(run, status + (f": {fields['error']}" if fields.get("error") else ""))
    try:
        run.set_status(status, expect=ACTIVE, pid=None, **fields)
    except StatusConflict as exc:
        worker_log_line(run, f"worker {os.getpid()} ended {status}, but {exc}: kept")
    except StorageError as exc:
        kept = reserve.write(run.root, {"status": status, "at": time.time(), "pid": os.getpid(),
                                        **fields, "status_write": str(exc)})
        worker_log_line(run, f"could not write the run's end ({status}: {fields.get('error')}): {exc}"
                             + (f"; recorded in {reserve.RESERVE}" if kept else ""))


def _sweep(run: Run) -> None:
    """Remove this process's temporaries in the run folder (jsonio.temp_path names carry the
    pid): a write that failed in a library without its own cleanup leaves none behind."""
    for tmp in run.root.rglob(f".*.{os.getpid()}.*.tmp"):
        try:
            tmp.unlink()
        except OSError:
            pass


def _raise_cancelled(signum, frame):
    raise Cancelled("terminated (SIGTERM)")


def execute_by_id(run_id: str, home: str | None = None, *, resume: bool = False,
                  slots: int | None = None, backend: str = "local") -> dict | None:
    """Entry point for processes and Ray actors: find the run in the store at ``home``; returns the
    store's record of its result (plain JSON data: it crosses a process boundary)."""
    store = RunStore(home)
    result = execute(store.get(run_id), home=store.home, resume=resume, slots=slots, backend=backend)
    return stored_result(run_id, result) if result is not None else None
