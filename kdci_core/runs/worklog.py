"""A run's ``worker.log``: what its worker decided and did, in lines a person reads (the run
detail view's Log tab, ``tail -f``), whichever backend runs it.

- the start (method, schedule, device) and every end (finished, failed, cancelled, with why);
- one line per epoch: step, loss, the student's accuracy (KDCI's compensation when on);
- the method's long steps (synthesis rounds, scoring a pool, training the built-in teacher): a
  line once one has taken ``PROGRESS_EVERY_S`` seconds, then at most one per that interval,
  and its end when it had one, never a line per step;
- Python warnings raised while the run works, and the resume decision (``worker.py``).

Lines are appended to the file directly (not through stdout): a Ray actor's output goes to
Ray's own logs, and a local worker's stdout, which is this file too, gets no copies.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings

from ..common.progress import Progress, action_of
from ..distill import Callback, EpochRecord, FitResult
from .store import Run

#: the least time between two lines about the method's long steps
PROGRESS_EVERY_S = 15.0


def worker_log_line(run: Run, text: str) -> None:
    """One timestamped line in the run's ``worker.log`` (what the worker decided, for a reader);
    best effort: a disk with no room for it does not stop the worker."""
    try:
        with open(run.path("worker.log"), "a") as f:
            f.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}] {text}\n")
    except OSError:
        pass


def epoch_text(rec: EpochRecord, epochs: int | None = None) -> str:
    """An epoch's record for people: ``epoch 3/10  step 150  loss 0.4123  student 45.20%``."""
    total = f"/{epochs}" if epochs else ""
    loss = rec.loss if rec.loss is not None else float("nan")
    text = f"epoch {rec.epoch}{total}  step {rec.step}  loss {loss:.4f}  student {rec.student_accuracy:.2f}%"
    if rec.kdci.get("kdci_compensation") is not None:
        text += f"  KDCI compensation {rec.kdci['kdci_compensation']:.4f}"
    return text


class LogLines(Callback):
    """The loop's start, every epoch and the end, as lines of ``worker.log``."""

    def __init__(self, run: Run):
        self.run, self.epochs = run, None

    def on_fit_start(self, distiller) -> None:
        cfg = distiller.cfg
        self.epochs = cfg.epochs
        worker_log_line(self.run, f"started: {cfg.method}, KDCI {'on' if cfg.kdci else 'off'}, "
                                  f"{cfg.epochs} epochs x {cfg.steps_per_epoch} steps of "
                                  f"{cfg.batch_size}, on {distiller.device}")

    def on_epoch_end(self, record: EpochRecord) -> None:
        worker_log_line(self.run, epoch_text(record, self.epochs))

    def on_fit_end(self, result: FitResult) -> None:
        worker_log_line(self.run, f"result: student {result.student_accuracy:.2f}%, "
                                  f"teacher {result.teacher_accuracy:.2f}% ({result.wall_time_s:.1f} s)")


class ProgressLog:
    """A progress callback writing the method's long steps to ``worker.log`` at a bounded rate;
    ``then``: the progress callback it passes every report on to (may be None)."""

    def __init__(self, run: Run, then: Progress = None, every: float = PROGRESS_EVERY_S,
                 clock=time.monotonic):
        self.run, self.then, self.every, self.clock = run, then, every, clock
        self.last = clock()       # the last line (or the start): the first line waits ``every``
        self.logged: set = set()  # the actions in progress that had a line

    def __call__(self, done: int, total: int, desc: str) -> None:
        now, action = self.clock(), action_of(desc)
        if done >= total and action in self.logged:
            self.logged.discard(action)
            self.last = now
            worker_log_line(self.run, f"{desc}: done ({total})")
        elif now - self.last >= self.every and done < total:
            self.logged.add(action)
            self.last = now
            worker_log_line(self.run, f"{desc}: {done}/{total}")
        if self.then is not None:
            self.then(done, total, desc)


@contextlib.contextmanager
def warnings_logged(run: Run, *, echo: bool):
    """Python warnings raised meanwhile go to ``worker.log`` too (``echo``: also where they went
    before: a terminal; not for a local worker, whose stderr is the log file itself)."""
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        worker_log_line(run, f"warning: {category.__name__}: {message}")
        if echo:
            previous(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        if warnings.showwarning is show:
            warnings.showwarning = previous
