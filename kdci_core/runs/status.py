"""The one run-status vocabulary and the one state machine every status change goes through.

A run is created ``queued``, becomes ``running`` when its worker starts the loop, and ends
``finished``, ``failed`` or ``cancelled``. ``ACTIVE`` runs have (or wait for) a worker, which the
monitor checks; ``TERMINAL`` runs are done; ``RESUMABLE`` runs can continue from their last
checkpoint in a new worker. ``CORRUPT`` is only ever listed, never set.

``TRANSITIONS`` names every allowed change (a status to itself is an update of its fields: a
worker's pid, an epoch's commit). ``Run.set_status`` checks it under the run folder's lock, so a
decision made on an old read (a worker starting after a cancel, a monitor after a worker's end)
is refused instead of undoing the newer status: a terminal run leaves its status only through a
resume's claim.
"""

from __future__ import annotations

from ..common.errors import InputError

QUEUED = "queued"
RUNNING = "running"
FINISHED = "finished"
FAILED = "failed"
CANCELLED = "cancelled"

STATUSES = (QUEUED, RUNNING, FINISHED, FAILED, CANCELLED)
ACTIVE = (QUEUED, RUNNING)
TERMINAL = (FINISHED, FAILED, CANCELLED)
RESUMABLE = (FAILED, CANCELLED)
#: not a state a run is ever set to: what the store lists for a run folder whose files are damaged
#: (runs.integrity), with the damage as its error; every other run lists and works as usual
CORRUPT = "corrupt"
LISTED = STATUSES + (CORRUPT,)

#: status -> the statuses it may become (who makes each change: docs/ARCHITECTURE.md)
TRANSITIONS = {
    QUEUED: (QUEUED, RUNNING, FAILED, CANCELLED),  # worker starts / cannot start, monitor, cancel
    RUNNING: (RUNNING, FINISHED, FAILED, CANCELLED),  # epoch commits, the worker's end, monitor, cancel
    FINISHED: (),
    FAILED: (QUEUED,),  # a resume's claim
    CANCELLED: (QUEUED,),  # a resume's claim
}


class StatusConflict(InputError):
    """A status change that the run's current status does not allow (someone else changed it
    first: a cancel before a worker's start, a worker's end before the monitor's verdict)."""

    def __init__(self, run_id: str, current: str | None, wanted: str):
        self.current, self.wanted = current, wanted
        super().__init__(f"run {run_id}: it is {current}; it cannot become {wanted}")


def check_transition(run_id: str, current: str | None, wanted: str, expect=None) -> None:
    """Raise StatusConflict unless ``current`` may become ``wanted`` (and is one of ``expect``,
    when given: a compare-and-set on the status read under the run's lock)."""
    if wanted not in STATUSES:
        raise ValueError(f"unknown status {wanted!r}")
    if (expect is not None and current not in expect) or wanted not in TRANSITIONS.get(current, ()):
        raise StatusConflict(run_id, current, wanted)
