"""The one run-status vocabulary: every writer and reader of a run's status uses these names.

A run is created ``queued``, becomes ``running`` when its worker starts the loop, and ends
``finished``, ``failed`` or ``cancelled``. ``ACTIVE`` runs have (or wait for) a worker, which the
monitor checks; ``TERMINAL`` runs are done; ``RESUMABLE`` runs can continue from their last
checkpoint in a new worker. ``CORRUPT`` is only ever listed, never set.
"""

from __future__ import annotations

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
