"""The monitor: which active runs lost their worker, cancelling, waiting for runs to end.

``reconcile`` marks the runs of dead workers failed (pid gone on this machine, no heartbeat for
``STALE_S`` from another one, a Ray cluster that no longer answers, or the worker's own last
words in its reserve when it could not write its status: a full disk) and repairs index rows
that lag their folder; every listing (CLI, pages, ``wait_for``) calls it, so a killed worker
shows within seconds. Backend-agnostic: it reads only the run folders (and knocks on a Ray
cluster's port). A listing never needs to write: each verdict is decided under the run's lock,
written when the disk takes it and otherwise held in memory for this process (``hold_status``).
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import time
import warnings
from pathlib import Path

from ..common.errors import InputError, StorageError
from . import reserve
from .backends.reach import unreachable
from .status import ACTIVE, CANCELLED, FAILED, QUEUED, RUNNING, TERMINAL, TRANSITIONS
from .store import Run, RunStore

#: a worker on another machine (no pid to check) is declared dead after this long without a
#: heartbeat; on this machine the pid is checked instead, which is immediate and immune to a
#: heartbeat thread starved on a saturated CPU (seen: 6 s gaps on a 2-core VM under load)
STALE_S = 30.0
#: a queued Ray run whose actor has not started this long after its submission is failed when
#: its cluster's GCS port does not accept a connection within RAY_PROBE_TIMEOUT_S
RAY_START_GRACE_S = 30.0
RAY_PROBE_TIMEOUT_S = 2.0
#: backends whose worker is a process on the launching machine (cancel also sends it SIGTERM)
PROCESS_BACKENDS = ("local", "inline")
#: below this much free space the disk that holds a run is called full in a dead worker's error
FULL_BYTES = 1 << 20


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
    """Give every active run whose worker is gone its real end (failed, or what the worker's
    reserve says); returns their ids. Never raises for a disk that refuses the writes."""
    now = now or time.time()
    host, ended, probes = socket.gethostname(), [], {}
    _write_held(store)
    for row in store.rows(status=QUEUED) + store.rows(status=RUNNING):
        try:
            run = store.get(row["run_id"])
        except InputError:  # its folder is gone: so is its row
            _quietly(store.index.delete, row["run_id"])
            continue
        with run.lock():  # decided on what is there now, not on the row's old read
            try:
                st = run.status()
            except InputError:  # a damaged status file: the row becomes ``corrupt``, the rest go on
                _quietly(run.sync_index)
                continue
            if st.get("status") not in ACTIVE:
                # the folder moved on but the index row lags (read between the worker's status
                # write and its index update, or an index write that gave up on a locked database)
                _quietly(run.sync_index, st)
                continue
            verdict = _verdict(run, st, now=now, host=host, probes=probes)
            if verdict:
                status, fields = verdict
                _record(run, run.next_status(status, expect=ACTIVE, pid=None, **fields))
                ended.append(run.run_id)
    return ended


def _verdict(run: Run, st: dict, *, now: float, host: str, probes: dict) -> tuple[str, dict] | None:
    """(status, fields) for an active run whose worker is gone, None while it lives."""
    words = reserve.read(run.root)
    if words and words.get("status") in TERMINAL and (words.get("at") or 0) > (st.get("updated_at") or 0):
        fields = {k: v for k, v in words.items() if k not in ("status", "at", "pid")}
        status = words["status"] if words["status"] in TRANSITIONS[st["status"]] else FAILED
        return status, {**fields, "recorded_in": reserve.RESERVE}
    pid, beat = st.get("pid"), run.last_heartbeat()
    reason = None
    if pid and st.get("host") == host and not pid_alive(pid):
        reason = f"worker process {pid} died (killed, crashed or its machine restarted)"
    elif beat is not None and now - beat > STALE_S:
        reason = f"no heartbeat from the worker for {now - beat:.0f} s"
    elif beat is None and st.get("status") == RUNNING and now - st.get("updated_at", now) > STALE_S:
        reason = "running without a heartbeat"
    elif (beat is None and st.get("backend") == "ray"
          and now - (st.get("submitted_at") or now) > RAY_START_GRACE_S):
        address = st.get("ray_gcs") or st.get("ray_address")
        if address not in probes:
            probes[address] = unreachable(address, RAY_PROBE_TIMEOUT_S)
        if probes[address]:
            return FAILED, {"error": f"Ray cluster at {address} unreachable ({probes[address]}); its "
                                     f"actor never started. `runs resume {run.run_id}` submits it "
                                     "again once the cluster is back"}
    if not reason:
        return None
    if _disk_full(run.root):
        reason += f"; the disk that holds {run.root.parent} is full"
    return FAILED, {"error": f"worker lost: {reason}; `runs resume {run.run_id}` continues from its "
                             "last checkpoint"}


def _disk_full(path: Path) -> bool:
    try:
        fs = os.statvfs(path)
    except OSError:
        return False
    return fs.f_bavail * fs.f_frsize < FULL_BYTES


_said: set[str] = set()


def _record(run: Run, state: dict) -> None:
    """Write the verdict; when the disk refuses, hold it in memory and say so once."""
    try:
        run.write_status(state)
    except StorageError as exc:
        run.hold_status(state)
        if str(run.root.parent) not in _said:
            _said.add(str(run.root.parent))
            warnings.warn(f"{exc}; listing run {run.run_id} as {state['status']} without recording "
                          "it (and any other such run) until the disk takes writes again", stacklevel=3)


def _write_held(store: RunStore) -> None:
    """Write the verdicts held in memory (the disk refused them) once it takes them; a status
    file changed since (a resume) makes its held verdict moot."""
    for run_id, (stamp, state) in list(store.index.held.items()):
        try:
            run = store.get(run_id)
        except InputError:
            store.index.held.pop(run_id, None)
            continue
        with run.lock():
            try:
                if run.status_file().get("updated_at") == stamp:
                    run.write_status(state)
            except (InputError, OSError):  # still refused (StorageError), or damaged meanwhile
                continue
            store.index.held.pop(run_id, None)


def _quietly(write, *args) -> None:
    """An opportunistic repair of the index: a disk that refuses it changes nothing listed."""
    try:
        write(*args)
    except (StorageError, OSError, sqlite3.Error):
        pass


def cancel(store: RunStore, run_id: str) -> str:
    """Ask a run to stop (flag file, and SIGTERM to a local worker); returns the new status.

    Under the run's lock, like every status change: a worker starting at the same moment either
    went ``running`` before (and sees the flag or the SIGTERM) or finds the run ``cancelled``
    and does nothing; so a cancel acknowledged after a resume always wins over it."""
    run = store.get(run_id)
    with run.lock():
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
            run.set_status(CANCELLED, expect=ACTIVE, pid=None, error="cancelled before its worker ran")
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
