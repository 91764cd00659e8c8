"""The worker entry point every backend runs: one stored run, executed in this process.

It waits for a concurrency slot (queued), then runs the distillation loop with a heartbeat
thread, a checkpoint after every epoch and a cancel check every step, and leaves the run
``finished``, ``failed`` or ``cancelled`` whatever happens. The same function runs in a local
detached process (``python -m kdci_core worker RUN_ID``) and inside a Ray task.
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

from ..checkpointing import load_state, save_state
from ..checkpoints import save_checkpoint
from ..config import DistillConfig
from ..errors import InputError
from ..progress import Progress
from ..runstore import Run, RunStore

CHECKPOINT = "checkpoint.safetensors"
HEARTBEAT_S = 1.0


class Cancelled(KeyboardInterrupt):
    """Raised inside the loop when the run's cancel was requested (flag file or SIGTERM)."""


class Heartbeat(threading.Thread):
    def __init__(self, run: Run, every: float = HEARTBEAT_S):
        super().__init__(daemon=True, name=f"heartbeat-{run.run_id}")
        self.run_, self.every, self.stopped = run, every, threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.run_.heartbeat()
            except OSError:
                pass  # a full disk must not kill the run; the monitor will notice staleness
            self.stopped.wait(self.every)

    def stop(self) -> None:
        self.stopped.set()


@contextmanager
def slot(home: Path, slots: int | None, run: Run):
    """Hold one of ``slots`` lock files for the run's duration (None: no limit)."""
    if not slots:
        yield
        return
    folder = home / "slots"
    folder.mkdir(parents=True, exist_ok=True)
    while True:
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


def _cancel_checker(run: Run, progress: Progress) -> Progress:
    """A progress callback that also raises Cancelled when the run's cancel flag appears."""
    def check(done: int, total: int, desc: str) -> None:
        if run.cancel_requested():
            raise Cancelled("cancel requested")
        if progress is not None:
            progress(done, total, desc)
    return check


def execute(run: Run, *, home: Path | None = None, resume: bool = False, slots: int | None = None,
            backend: str = "local", progress: Progress = None, on_epoch=None,
            distiller=None) -> dict | None:
    """Run ``run`` (its stored config) here; returns the result, or None if it was cancelled.

    ``distiller``: one already built from the same config (``distill()`` builds it first so
    that bad input is rejected before a run exists)."""
    from ..distill import Distiller

    home = Path(home) if home is not None else run.root.parent.parent
    previous = signal.signal(signal.SIGTERM, _raise_cancelled) \
        if threading.current_thread() is threading.main_thread() else None
    if resume:
        run.clear_cancel()
    beat = Heartbeat(run)
    beat.start()
    run.set_status("queued", pid=os.getpid(), host=socket.gethostname(), backend=backend)
    try:
        with slot(home, slots, run):
            state = None
            if resume and run.path(CHECKPOINT).exists():
                state = load_state(run.path(CHECKPOINT))
                run.truncate_metrics(state["step"])
            elif resume:
                run.truncate_metrics(0)  # no checkpoint yet: start over
            run.set_status("running", pid=os.getpid(), error=None, traceback=None,
                           resumed_from_step=state["step"] if state else None, started_at=time.time())
            cfg = DistillConfig.from_dict(run.config())
            if distiller is None:
                distiller = Distiller(cfg, progress=_cancel_checker(run, progress))
            else:
                distiller.progress = distiller.method.ctx.progress = _cancel_checker(run, progress)
            result = distiller.run(run=run, on_epoch=on_epoch, resume=state,
                                   on_checkpoint=lambda st: save_state(st, run.path(CHECKPOINT)))
            result["run_id"] = run.run_id
            save_checkpoint(distiller.student, run.path("student.safetensors"),
                            metadata={"arch": cfg.student, "num_classes": distiller.info.num_classes,
                                      "in_channels": distiller.info.in_channels, "run_id": run.run_id})
            run.write_result(result)
            save_figures(run)
            run.set_status("finished", pid=None, finished_at=time.time())
            return result
    except Cancelled as exc:
        run.set_status("cancelled", pid=None, error=f"cancelled: {exc}")
    except KeyboardInterrupt:
        run.set_status("cancelled", pid=None, error="cancelled: interrupted")
        raise
    except InputError as exc:
        run.set_status("failed", pid=None, error=f"rejected input: {exc}")
        raise
    except BaseException as exc:
        run.set_status("failed", pid=None, error=f"{type(exc).__name__}: {exc}",
                       traceback=traceback.format_exc(limit=8))
        raise
    finally:
        beat.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return None


def save_figures(run: Run) -> None:
    """The run's curves as plotly JSON in ``figures/`` (``plotly.io.read_json`` opens them)."""
    from ..report_figures import curves_figure

    folder = run.path("figures")
    folder.mkdir(exist_ok=True)
    for y in ("student_accuracy", "loss"):
        tmp = folder / f".{y}.json.tmp"
        tmp.write_text(curves_figure([run], x="epoch", y=y).to_json())
        os.replace(tmp, folder / f"{y}.json")


def _raise_cancelled(signum, frame):
    raise Cancelled("terminated (SIGTERM)")


def execute_by_id(run_id: str, home: str | None = None, *, resume: bool = False,
                  slots: int | None = None, backend: str = "local") -> dict | None:
    """Entry point for processes and Ray tasks: find the run in the store at ``home``."""
    store = RunStore(home)
    return execute(store.get(run_id), home=store.home, resume=resume, slots=slots, backend=backend)
