"""The Ray backend: the same worker entry point, run on a Ray cluster.

Each run becomes a *detached* Ray actor that executes the run in a thread and exits when it
ends, so runs outlive the process that launched them (the dashboard, ``distill --detach``) just
as local workers do; plain tasks would be cancelled when their driver disconnects. Ray
schedules them by CPU (one each; ``num_gpus`` when asked), so no slot files are used. Workers
write to the same run store, which must therefore be a path every node sees (a shared
filesystem; on one machine, simply ``$KDCI_HOME``). Cancel goes through the run's cancel flag,
which the worker checks every step; a dead actor is caught by the heartbeat monitor.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from ...common.errors import InputError
from ..status import QUEUED
from ..store import Run, RunStore
from .base import Backend, package_env


def _ray():
    try:
        import ray
    except ImportError:
        raise InputError("backend ray: the ray package is not installed (pip install ray)") from None
    return ray


class _RunActor:
    """Executes one run in a thread; ends its own process when the run ends."""

    def __init__(self, run_id: str, home: str, resume: bool):
        import threading

        def work():
            from kdci_core.runs.worker import execute_by_id
            try:
                execute_by_id(run_id, home, resume=resume, backend="ray")
            except BaseException:  # noqa: BLE001  (recorded in the run's status by execute)
                pass
            finally:
                os._exit(0)

        threading.Thread(target=work, daemon=True, name=f"kdci-{run_id}").start()

    def ping(self) -> str:
        return "ok"


def start_local_head() -> None:
    """Start a Ray head on this machine as its own detached processes (``ray start --head``).

    Not ``ray.init()`` of an embedded instance: its processes are killed when the *thread* that
    started them ends (Linux parent-death signal), and a Streamlit page runs in a short-lived
    thread (seen: the GCS gone 2 s after the Runs page launched, the runs queued for ever). A
    head of its own also outlives the dashboard or command, as detached runs must; ``ray stop``
    ends it."""
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--disable-usage-stats",
           "--include-dashboard=false"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, start_new_session=True,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise InputError("backend ray: `ray start --head` did not finish in 300 s") from None
    if proc.returncode != 0:
        raise InputError(f"backend ray: `ray start --head` failed ({proc.returncode}): "
                         f"{(proc.stderr or proc.stdout).strip()[-600:]}")


class RayBackend(Backend):
    name = "ray"

    def __init__(self, store: RunStore, *, address: str | None = None, runtime_env: dict | None = None,
                 num_gpus: float = 0.0):
        ray = _ray()
        self.store, self.num_gpus = store, num_gpus
        given = address or os.environ.get("RAY_ADDRESS")
        self.address = given  # recorded with each run, so a resume finds the same cluster
        if not ray.is_initialized():
            env = runtime_env or {"env_vars": package_env(store)}
            options = dict(runtime_env=env, ignore_reinit_error=True, log_to_driver=False)
            try:
                try:
                    ray.init(address=given or "auto", **options)  # "auto": a head on this machine
                except ConnectionError:
                    if given:
                        raise
                    start_local_head()
                    ray.init(address="auto", **options)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise InputError(f"backend ray: cannot connect to Ray at {given or 'a head on this machine'} "
                                 f"({exc})") from None
        self.actor_cls = ray.remote(num_cpus=1, num_gpus=num_gpus, max_restarts=0)(_RunActor)

    def submit(self, run: Run, *, resume: bool = False) -> str:
        name = f"kdci-{run.run_id}-{int(time.time() * 1000)}"
        self.actor_cls.options(name=name, lifetime="detached").remote(
            run.run_id, str(self.store.home), resume)
        run.set_status(QUEUED, pid=None, host=None, backend=self.name, ray_actor=name, ray_address=self.address,
                       submitted_at=time.time(), submitted_from=socket.gethostname(), error=None)
        return name
