"""The loop's callback protocol, in the manner of PyTorch Lightning's ``Callback``.

A callback overrides the events it cares about; every other method is a no-op. The loop
dispatches each event by name to every callback in order and knows no particular callback:
where records go (the run store's metrics, checkpoints, figures), what a diagnosis keeps, what
the command line prints, all live with their own layer. A callback ends the loop early by
setting ``should_stop`` (checked after every step; the run then ends normally, with its result).

Events, in the order a fit sees them:
- ``on_fit_start(distiller)``: once, before the method prepares or a checkpoint is restored;
- ``on_substitution(step, images)``: the method made new substitution data (a generation
  method's new synthetic batch, a sampling method's selection at step 0); the loop rebuilds
  KDCI's dictionary from the same images right after;
- ``on_step_end(step, metrics)``: after each student step (0-based ``step``; ``metrics``: every
  loss term and ``loss``, as 0-d device tensors: reading one syncs the host with the GPU, so a
  callback that needs numbers every step pays for it; most should use ``on_log``);
- ``on_log(record)``: every ``log_every`` steps (a config field; 0: never), the window's mean of
  each loss term with ``step``, fractional ``epoch``, ``wall_time_s`` and ``lr``;
- ``on_epoch_end(record)``: the epoch's :class:`~.records.EpochRecord` (``epoch``, ``step``,
  ``student_accuracy``, ``wall_time_s``, ``lr``, each loss term's epoch mean in ``losses``, KDCI's
  telemetry, the system metrics), already in the history;
- ``on_checkpoint(state)``: right after ``on_epoch_end``, the resumable training state after
  that epoch (see :mod:`kdci_core.distill.state`); saving it is a callback's business;
- ``on_fit_end(result)``: once, with the run's :class:`~.records.FitResult`.

Records and results are frozen: a callback reads them and keeps what it needs elsewhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import torch

from ..common.progress import Progress, report

if TYPE_CHECKING:
    from .records import EpochRecord, FitResult

EVENTS = ("on_fit_start", "on_substitution", "on_step_end", "on_log", "on_epoch_end", "on_checkpoint",
          "on_fit_end")


class Callback:
    """Base class: one no-op method per loop event, and ``should_stop``."""

    #: set to True to end the loop after the current step
    should_stop: bool = False

    def on_fit_start(self, distiller) -> None:
        """Before the method prepares (or the run is restored from a checkpoint)."""

    def on_substitution(self, step: int, images: torch.Tensor) -> None:
        """New substitution data; KDCI's dictionary is rebuilt from them next."""

    def on_step_end(self, step: int, metrics: dict) -> None:
        """After student step ``step`` (0-based)."""

    def on_log(self, record: dict) -> None:
        """The loss terms' means over the last ``log_every`` steps."""

    def on_epoch_end(self, record: "EpochRecord") -> None:
        """The epoch's evaluation record (also appended to the loop's history)."""

    def on_checkpoint(self, state: dict) -> None:
        """The resumable state after the epoch just ended."""

    def on_fit_end(self, result: "FitResult") -> None:
        """The run's result (``result.to_json()`` is the ``distill --json`` dict)."""


class CallbackList:
    """The loop's view of its callbacks: dispatch an event by name, ask whether to stop."""

    def __init__(self, callbacks: Iterable[Callback] = ()):
        self.callbacks = list(callbacks)

    def dispatch(self, event: str, *args) -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown loop event {event!r}; expected one of {', '.join(EVENTS)}")
        for cb in self.callbacks:
            getattr(cb, event)(*args)

    @property
    def should_stop(self) -> bool:
        return any(cb.should_stop for cb in self.callbacks)

    def __add__(self, other: Iterable[Callback]) -> "CallbackList":
        return CallbackList([*self.callbacks, *other])


class StepProgress(Callback):
    """Reports the student steps to a progress callback (a tqdm bar, a dashboard bar)."""

    def __init__(self, progress: Progress, desc: str | None = None):
        self.progress, self.desc, self.total = progress, desc, 0

    def on_fit_start(self, distiller) -> None:
        cfg = distiller.cfg
        self.total = distiller.total_steps
        self.desc = self.desc or f"distill {cfg.method} kdci={'on' if cfg.kdci else 'off'}"

    def on_step_end(self, step: int, metrics: dict) -> None:
        report(self.progress, step + 1, self.total, self.desc)
