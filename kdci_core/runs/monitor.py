"""The monitor: which active runs lost their worker, cancelling, waiting for runs to end.

``reconcile`` marks the runs of dead workers failed (pid gone on this machine, or no heartbeat
for ``STALE_S`` from another one) and repairs index rows that lag their folder; every listing
(CLI, pages, ``wait_for``) calls it, so a killed worker shows within seconds. Backend-agnostic:
it reads only the run folders.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

from ..common.errors import InputError
from .status import ACTIVE, CANCELLED, FAILED, QUEUED, RUNNING
from .store import RunStore

#: a worker on another machine (no pid to check) is declared dead after this long without a
#: heartbeat; on this machine the pid is checked instead, which is immediate and immune to a
#: heartbeat thread starved on a saturated CPU (seen: 6 s gaps on a 2-core VM under load)
STALE_S = 30.0
#: backends whose worker is a process on the launching machine (cancel also sends it SIGTERM)
PROCESS_BACKENDS = ("local", "inline")


def pid_alive(pid: int | None) -> bool:
    """True if ``pid`` runs on this machine and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return True  # no /proc (not Linux): kill(0) said it exists


def reconcile(store: RunStore, *, now: float | None = None) -> list[str]:
    """Mark the active runs whose worker is gone as failed; returns their ids."""
    now = now or time.time()
    host, dead = socket.gethostname(), []
    for row in store.rows(status=QUEUED) + store.rows(status=RUNNING):
        try:
            run = store.get(row["run_id"])
        except InputError:  # its folder is gone: so is its row
            store.index.delete(row["run_id"])
            continue
        try:
            st = run.status()
        except InputError:  # a damaged status file: the row becomes ``corrupt``, the rest go on
            run.sync_index()
            continue
        if st.get("status") not in ACTIVE:
            # the folder moved on but the index row lags (read between the worker's status
            # write and its index update, or an index write that gave up on a locked database)
            run.sync_index(st)
            continue
        pid, beat = st.get("pid"), run.last_heartbeat()
        reason = None
        if pid and st.get("host") == host and not pid_alive(pid):
            reason = f"worker process {pid} died (killed, crashed or its machine restarted)"
        elif beat is not None and now - beat > STALE_S:
            reason = f"no heartbeat from the worker for {now - beat:.0f} s"
        elif beat is None and st.get("status") == RUNNING and now - st.get("updated_at", now) > STALE_S:
            reason = "running without a heartbeat"
        if reason:
            run.set_status(FAILED, pid=None, error=f"worker lost: {reason}; `runs resume "
                                                     f"{run.run_id}` continues from its last checkpoint")
            dead.append(run.run_id)
    return dead


def cancel(store: RunStore, run_id: str) -> str:
    """Ask a run to stop (flag file, and SIGTERM to a local worker); returns the new status."""
    run = store.get(run_id)
    st = run.status()
    if st.get("status") not in ACTIVE:
        raise InputError(f"run {run_id}: it is {st.get('status')}; only queued or running runs "
                         f"can be cancelled")
    run.request_cancel()
    pid = st.get("pid")
    if pid and st.get("host") == socket.gethostname() and st.get("backend") in PROCESS_BACKENDS:
        try:
            os.kill(int(pid), signal.SIGTERM)
        except ProcessLookupError:
            pid = None
    if not pid or (st.get("host") == socket.gethostname() and not pid_alive(pid)):
        run.set_status(CANCELLED, pid=None, error="cancelled before its worker ran")
        return CANCELLED
    return "cancelling"


def wait_for(store: RunStore, run_ids, *, timeout: float = 600, poll: float = 0.5) -> dict[str, str]:
    """Block until every run is finished/failed/cancelled (reconciling meanwhile)."""
    deadline = time.time() + timeout
    while True:
        reconcile(store)
        states = {r: store.get(r).status().get("status") for r in run_ids}
        if all(s not in ACTIVE for s in states.values()) or time.time() > deadline:
            reconcile(store)  # the index rows now agree with the folders read above
            return states
        time.sleep(poll)
