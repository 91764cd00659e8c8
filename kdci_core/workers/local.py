"""The default backend: each run is its own OS process, detached from whoever launched it.

A worker is ``python -m kdci_core worker RUN_ID`` in a new session (a web server's exit or a
browser refresh does not touch it), its output in the run's ``worker.log``. The concurrency limit
is a set of lock files the workers take (``worker.slot``), so no scheduler process is needed.
``reconcile`` is the monitor: it marks the runs of dead workers failed (pid gone, or no
heartbeat for ``STALE_S``); every listing calls it, so a killed worker shows within seconds.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..errors import InputError
from ..runstore import Run, RunStore

REPO = Path(__file__).resolve().parents[2]
#: a worker on another machine (no pid to check) is declared dead after this long without a
#: heartbeat; on this machine the pid is checked instead, which is immediate and immune to a
#: heartbeat thread starved on a saturated CPU (seen: 6 s gaps on a 2-core VM under load)
STALE_S = 30.0
ACTIVE = ("queued", "running")


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


def _reap(proc: subprocess.Popen) -> None:
    threading.Thread(target=proc.wait, daemon=True, name=f"reap-{proc.pid}").start()


class LocalBackend:
    name = "local"

    def __init__(self, store: RunStore, max_concurrent: int | None = None):
        self.store = store
        self.max_concurrent = max_concurrent if max_concurrent is not None else default_concurrency()

    def submit(self, run: Run, *, resume: bool = False) -> int:
        """Start the run's worker process; returns its pid at once."""
        env = {**os.environ, "KDCI_HOME": str(self.store.home),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        cmd = [sys.executable, "-m", "kdci_core", "worker", run.run_id, "--home", str(self.store.home),
               "--slots", str(self.max_concurrent or 0), "--backend", self.name]
        if resume:
            cmd.append("--resume")
        with open(run.path("worker.log"), "ab") as log:
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        _reap(proc)  # no zombie left behind in a long-lived launcher (the web server)
        run.set_status("queued", pid=proc.pid, host=socket.gethostname(), backend=self.name,
                       submitted_at=time.time(), error=None)
        return proc.pid


def default_concurrency() -> int:
    """Runs at once: $KDCI_MAX_CONCURRENT, else one per 2 cores (at least 1)."""
    env = os.environ.get("KDCI_MAX_CONCURRENT")
    if env:
        return max(1, int(env))
    return max(1, (os.cpu_count() or 2) // 2)


def reconcile(store: RunStore, *, now: float | None = None) -> list[str]:
    """Mark the active runs whose worker is gone as failed; returns their ids."""
    now = now or time.time()
    host, dead = socket.gethostname(), []
    for row in store.rows(status="queued") + store.rows(status="running"):
        run = store.get(row["run_id"])
        st = run.status()
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
        elif beat is None and st.get("status") == "running" and now - st.get("updated_at", now) > STALE_S:
            reason = "running without a heartbeat"
        if reason:
            run.set_status("failed", pid=None, error=f"worker lost: {reason}; `runs resume "
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
    if pid and st.get("host") == socket.gethostname() and st.get("backend") in ("local", "inline"):
        try:
            os.kill(int(pid), signal.SIGTERM)
        except ProcessLookupError:
            pid = None
    if not pid or (st.get("host") == socket.gethostname() and not pid_alive(pid)):
        run.set_status("cancelled", pid=None, error="cancelled before its worker ran")
        return "cancelled"
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
