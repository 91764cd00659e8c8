"""The run recorder: loop callbacks that write a run's records into its folder, and its heartbeat.

Commit order of an epoch (:class:`EpochRecorder`): the checkpoint (atomic rename), then the
epoch's metrics line (one append), then the status (atomic rename). A worker killed anywhere in
between leaves a checkpoint at least as new as the metrics, so a resume, which rewrites the
metrics from the checkpoint's own history, continues with epochs 1..N exactly: never a metrics
line without its checkpoint, never a silent restart from step 0.
"""

from __future__ import annotations

import threading
import time

from ..common.errors import StorageError
from ..common.faults import fault_point
from ..common.jsonio import atomic_write_text
from ..common.progress import Progress
from ..distill import Callback, EpochRecord, FitResult, save_state
from ..figures.runs import curves_figure
from ..models.weights import save_checkpoint
from .collapse import collapse_text, prediction_summary
from .integrity import CHECKPOINT
from .status import RUNNING
from .store import Run
from .worklog import LogLines, worker_log_line  # noqa: F401  (worker_log_line: its home before)

STUDENT = "student.safetensors"
HEARTBEAT_S = 1.0
PROGRESS_S = 1.0
FIGURES = ("student_accuracy", "loss")


class Cancelled(KeyboardInterrupt):
    """Raised inside the loop when the run's cancel was requested (flag file or SIGTERM)."""


class EpochRecorder(Callback):
    """Commits every epoch: checkpoint, then metrics line, then status (see the module doc)."""

    def __init__(self, run: Run):
        self.run, self.pending = run, None

    def on_epoch_end(self, record: EpochRecord) -> None:
        self.pending = record.to_json()

    def on_checkpoint(self, state: dict) -> None:
        record = self.pending if self.pending is not None else state["history"][-1]
        save_state(state, self.run.path(CHECKPOINT))
        self.run.append_metrics(record)
        fault_point("after_metrics")
        self.run.set_status(RUNNING, expect=(RUNNING,), checkpoint_step=state["step"],
                            epoch=record["epoch"])
        self.pending = None


class StepRecorder(Callback):
    """Every ``log_every`` record as a line of ``steps.jsonl`` (step-level loss curves)."""

    def __init__(self, run: Run):
        self.run = run

    def on_log(self, record: dict) -> None:
        self.run.append_steps(record)


class LiveProgress(Callback):
    """The step counter, rate and ETA in ``progress.json``, at most once per ``every`` seconds
    (a time check per step, no host sync), and the teacher's hash in the status at the start."""

    def __init__(self, run: Run, every: float = PROGRESS_S):
        self.run, self.every = run, every
        self.total, self.first, self.t0, self.last, self.step = 0, None, 0.0, 0.0, 0

    def on_fit_start(self, distiller) -> None:
        self.total, self.t0 = distiller.total_steps, time.time()
        self.run.set_status(RUNNING, expect=(RUNNING,), teacher_sha256=distiller.teacher.sha256,
                            total_steps=self.total)

    def on_step_end(self, step: int, metrics: dict) -> None:
        now = time.time()
        if self.first is None:
            self.first, self.t0 = step, now  # a resumed run counts its rate from here
        self.step = step + 1
        if now - self.last >= self.every or self.step == self.total:
            self.write(now)

    def on_epoch_end(self, record: EpochRecord) -> None:
        self.write(time.time())  # the counter agrees with the epoch just recorded

    def write(self, now: float) -> None:
        self.last = now
        done, elapsed = self.step - 1 - self.first, now - self.t0  # steps since the first one ended
        rate = done / elapsed if done and elapsed > 0 else None
        self.run.write_progress({"step": self.step, "total_steps": self.total, "steps_per_s": rate,
                                 "eta_s": (self.total - self.step) / rate if rate else None, "at": now})


class CancelCheck(Callback):
    """Ends the run with :class:`Cancelled` once its cancel flag appears: after every student step,
    and inside the method's long loops through the progress callback it wraps (:meth:`wrap`)."""

    def __init__(self, run: Run):
        self.run = run

    def check(self) -> None:
        if self.run.cancel_requested():
            raise Cancelled("cancel requested")

    def on_step_end(self, step: int, metrics: dict) -> None:
        self.check()

    def wrap(self, progress: Progress) -> Progress:
        def checked(done: int, total: int, desc: str) -> None:
            fault_point("progress")
            self.check()
            if progress is not None:
                progress(done, total, desc)
        return checked


class ResultRecorder(Callback):
    """At the end: the raw student's weights (safetensors) and ``result.json``: the run store's
    record of the result, its run id and the loop's :class:`FitResult` (with the final student's
    prediction histogram, what flags a collapsed student: ``runs.collapse``)."""

    def __init__(self, run: Run):
        self.run, self.distiller = run, None

    def on_fit_start(self, distiller) -> None:
        self.distiller = distiller

    def on_fit_end(self, result: FitResult) -> None:
        d = self.distiller
        record = stored_result(self.run.run_id, result)
        flag = collapse_text(prediction_summary(record))
        if flag:
            worker_log_line(self.run, f"warning: the student is {flag}")
        save_checkpoint(d.student, self.run.path(STUDENT),
                        metadata={"arch": d.cfg.student, "num_classes": d.info.num_classes,
                                  "in_channels": d.info.in_channels, "run_id": self.run.run_id})
        self.run.write_result(record)


class FigureRecorder(Callback):
    """At the end: the run's curves as plotly JSON in ``figures/`` (``plotly.io.read_json``)."""

    def __init__(self, run: Run):
        self.run = run

    def on_fit_end(self, result: FitResult) -> None:
        save_figures(self.run)


def stored_result(run_id: str, result: FitResult) -> dict:
    """The run store's record of a result (``result.json``, ``distill --json``): the run's id,
    then the loop's result as it writes itself."""
    return {"run_id": run_id, **result.to_json()}


def save_figures(run: Run) -> None:
    folder = run.path("figures")
    folder.mkdir(exist_ok=True)
    for y in FIGURES:
        atomic_write_text(folder / f"{y}.json", curves_figure([run.series()], x="epoch", y=y).to_json())


def recorders(run: Run) -> list[Callback]:
    """Every callback that records a run, in commit order."""
    return [CancelCheck(run), LiveProgress(run), StepRecorder(run), EpochRecorder(run),
            LogLines(run), ResultRecorder(run), FigureRecorder(run)]


class Heartbeat(threading.Thread):
    """The worker's sign of life, a timestamp file rewritten every second for the worker's whole
    life (queued for a slot, loading data, in the loop): a thread, not a loop callback, because
    it must beat while no loop runs. Use as a context manager."""

    def __init__(self, run: Run, every: float = HEARTBEAT_S):
        super().__init__(daemon=True, name=f"heartbeat-{run.run_id}")
        self.run_, self.every, self.stopped = run, every, threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.run_.heartbeat()  # atomic: a failed beat leaves no temporary behind
            except (OSError, StorageError):
                pass  # a full disk must not kill the run; the monitor will notice staleness
            self.stopped.wait(self.every)

    def stop(self) -> None:
        self.stopped.set()

    def __enter__(self) -> "Heartbeat":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        self.join(timeout=5)  # no beat after the worker's end (nor a temporary of one)
