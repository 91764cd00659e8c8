"""The default backend: each run is its own OS process, detached from whoever launched it.

A worker is ``python -m kdci_core worker RUN_ID`` in a new session (a web server's exit or a
browser refresh does not touch it), its output in the run's ``worker.log``. The concurrency limit
is a set of lock files the workers take (``worker.slot``), so no scheduler process is needed.
The monitor (``runs.monitor.reconcile``) marks the runs of dead workers failed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

from ..status import QUEUED, StatusConflict
from ..store import Run, RunStore
from .base import Backend, package_env


def _reap(proc: subprocess.Popen) -> None:
    threading.Thread(target=proc.wait, daemon=True, name=f"reap-{proc.pid}").start()


class LocalBackend(Backend):
    name = "local"

    def __init__(self, store: RunStore, max_concurrent: int | None = None):
        self.store = store
        self.max_concurrent = max_concurrent if max_concurrent is not None else default_concurrency()

    def submit(self, run: Run, *, resume: bool = False) -> int:
        """Start the run's worker process; returns its pid at once."""
        env = {**os.environ, **package_env(self.store)}
        cmd = [sys.executable, "-m", "kdci_core", "worker", run.run_id, "--home", str(self.store.home),
               "--slots", str(self.max_concurrent or 0), "--backend", self.name]
        if resume:
            cmd.append("--resume")
        # SIGTERM blocked in the child until its handler is in place (cli.runs.cmd_worker): a
        # worker terminated while Python starts ends ``cancelled``, not dead without a word
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            with open(run.path("worker.log"), "ab") as log:
                # the launcher's working directory: relative paths in the config mean what they meant there
                proc = subprocess.Popen(cmd, cwd=os.getcwd(), env=env, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        _reap(proc)  # no zombie left behind in a long-lived launcher (the web server)
        try:
            run.set_status(QUEUED, expect=(QUEUED,), pid=proc.pid, host=socket.gethostname(),
                           backend=self.name, submitted_at=time.time(), error=None)
        except StatusConflict:  # cancelled meanwhile: the worker finds it so and does nothing
            pass
        return proc.pid


def default_concurrency() -> int:
    """Runs at once: $KDCI_MAX_CONCURRENT, else one per 2 cores (at least 1)."""
    env = os.environ.get("KDCI_MAX_CONCURRENT")
    if env:
        return max(1, int(env))
    return max(1, (os.cpu_count() or 2) // 2)


