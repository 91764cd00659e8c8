"""The local backend's queue: runs waiting for a concurrency slot, first launched first served.

Positions come from the index (queued runs by creation time), so the dashboard, the command line
and the workers agree on them. A waiting worker only tries for a slot when fewer than ``slots``
live runs are ahead of it: the oldest queued runs get the slots that free up, instead of the
first worker to poll. Runs ahead whose worker has no fresh heartbeat (not started yet, or died
and not reconciled yet) do not hold the queue up.
"""

from __future__ import annotations

import time

from .index import RunIndex
from .status import QUEUED

#: a queued run ahead counts as waiting only with a heartbeat this recent
LIVE_S = 10.0


def queued_in_order(index: RunIndex) -> list[dict]:
    """The queued runs' index rows, oldest first (ties by run id)."""
    return index.query(status=QUEUED, sort="created_at", descending=False)


def queue_positions(index: RunIndex) -> dict[str, int]:
    """{run id: 1-based position} of every queued run."""
    return {row["run_id"]: i + 1 for i, row in enumerate(queued_in_order(index))}


def live_ahead(index: RunIndex, run_id: str, heartbeat_of, *, now: float | None = None) -> int:
    """How many queued runs ahead of ``run_id`` have a live worker (``heartbeat_of(run_id)``: the
    last heartbeat time or None)."""
    now = time.time() if now is None else now
    ahead = 0
    for row in queued_in_order(index):
        if row["run_id"] == run_id:
            break
        beat = heartbeat_of(row["run_id"])
        ahead += beat is not None and now - beat < LIVE_S
    return ahead
