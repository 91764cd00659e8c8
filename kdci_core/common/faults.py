"""Fault injection for the durability tests: a worker SIGKILLs itself at a named point.

A kill from outside lands wherever the worker happens to be; the windows that matter (inside a
checkpoint write, between an epoch's metrics line and its status) are too short to hit that way
every time. ``KDCI_FAULT=<point>:<n>`` makes the process kill itself (SIGKILL: no handler, no
cleanup, exactly what ``kill -9`` does) the ``n``-th time it reaches ``<point>``. Unset, each
point is one dictionary lookup. Points: ``progress`` (inside a method's synthesis or selection
loop), ``checkpoint_write`` (the checkpoint's temporary file written, not yet renamed),
``after_metrics`` (an epoch's metrics line appended, its status not yet written).
"""

from __future__ import annotations

import os
import signal

ENV = "KDCI_FAULT"
POINTS = ("progress", "checkpoint_write", "after_metrics")
_seen: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Kill this process here if ``$KDCI_FAULT`` names this point and its count is reached."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
