"""The Ray backend: the same worker entry point, run on a Ray cluster.

Each run becomes a *detached* Ray actor that executes the run in a thread and exits when it
ends, so runs outlive the process that launched them (the dashboard, ``distill --detach``) just
as local workers do; plain tasks would be cancelled when their driver disconnects. Ray
schedules them by CPU (one each; ``num_gpus`` when asked), so no slot files are used. Workers
write to the same run store, which must therefore be a path every node sees (a shared
filesystem; on one machine, simply ``$KDCI_HOME``). Cancel goes through the run's cancel flag,
which the worker checks every step; a dead actor is caught by the heartbeat monitor, and a run
whose actor never started on a cluster that stopped answering by the monitor's knock on the
cluster's port (``ray_gcs`` in its status). A launch to a cluster that does not answer fails
within ``RAY_CONNECT_TIMEOUT_S`` (``ray.init`` is bounded too: ``RAY_INIT_TIMEOUT_S``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

from ...common.errors import InputError
from ..status import QUEUED, StatusConflict
from ..store import Run, RunStore
from .base import Backend, package_env
from .reach import unreachable

#: how long a launch waits for the cluster's GCS port to accept a TCP connection (``ray.init``
#: itself retries an address that does not answer for minutes: seen > 90 s)
RAY_CONNECT_TIMEOUT_S = 5.0
#: how long ``ray.init`` may take once the port answered (a working cluster: 1-5 s; a port that
#: answers but is no Ray, e.g. behind a proxy that accepts every connection: Ray retries for
#: 20 s to minutes)
RAY_INIT_TIMEOUT_S = 30.0
#: how long ``ray start --head`` may take (about 3 s on a 2-core machine)
RAY_HEAD_START_TIMEOUT_S = 120.0


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
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RAY_HEAD_START_TIMEOUT_S,
                              start_new_session=True, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise InputError("backend ray: `ray start --head` did not finish in "
                         f"{RAY_HEAD_START_TIMEOUT_S:g} s") from None
    if proc.returncode != 0:
        raise InputError(f"backend ray: `ray start --head` failed ({proc.returncode}): "
                         f"{(proc.stderr or proc.stdout).strip()[-600:]}")


def gcs_address(given: str | None) -> str | None:
    """The ``host:port`` that ``ray.init(given or "auto")`` would connect to ($RAY_ADDRESS, then
    the last ``ray start`` of this machine or a GCS process on it); a ``ray://`` address as it
    is; None when no cluster is known here."""
    if given and "://" in given:
        return given
    from ray._private import services

    services.find_gcs_addresses.cache_clear()  # a head that died since the last look is no answer
    try:
        return services.canonicalize_bootstrap_address(given or "auto")
    except ConnectionError:
        return None
    except ValueError as exc:
        raise InputError(f"backend ray: address: expected host:port, found {given!r} ({exc})") from None


def reachable_address(given: str | None) -> str:
    """The cluster address to connect to, checked to answer within RAY_CONNECT_TIMEOUT_S; with
    no address given and no live head on this machine, a head started here. InputError, within
    that bound, when the cluster does not answer."""
    target = gcs_address(given)
    why = unreachable(target, RAY_CONNECT_TIMEOUT_S) if target else "no Ray cluster runs on this machine"
    if why and not given:  # the head this machine had is gone, or there never was one
        start_local_head()
        target = gcs_address(None)
        why = unreachable(target, RAY_CONNECT_TIMEOUT_S) if target else "`ray start --head` left no address"
    if why:
        where = given or target or "a head on this machine"
        raise InputError(f"backend ray: cannot connect to Ray at {where} ({why}; a launch waits at most "
                         f"{RAY_CONNECT_TIMEOUT_S:g} s for the cluster's port)")
    return target


def _init_within(ray, address: str, options: dict, timeout: float) -> None:
    """``ray.init`` in a thread given ``timeout`` seconds: it retries a silent GCS for minutes."""
    outcome: dict = {}

    def connect():
        try:
            ray.init(address=address, **options)
        except BaseException as exc:  # noqa: BLE001  (raised below, in the caller's thread)
            outcome["error"] = exc

    thread = threading.Thread(target=connect, daemon=True, name="kdci-ray-init")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise InputError(f"backend ray: the Ray cluster at {address} accepted a connection but "
                         f"`ray.init` had not finished after {timeout:g} s")
    error = outcome.get("error")
    if isinstance(error, (ConnectionError, ValueError, RuntimeError)):
        raise InputError(f"backend ray: cannot connect to Ray at {address} ({error})") from None
    if error is not None:
        raise error


class RayBackend(Backend):
    name = "ray"

    def __init__(self, store: RunStore, *, address: str | None = None, runtime_env: dict | None = None,
                 num_gpus: float = 0.0):
        ray = _ray()
        self.store, self.num_gpus = store, num_gpus
        given = address or os.environ.get("RAY_ADDRESS")
        self.address = given  # recorded with each run, so a resume finds the same cluster
        target = None
        if not ray.is_initialized():
            target = reachable_address(given)
            env = runtime_env or {"env_vars": package_env(store)}
            _init_within(ray, target, dict(runtime_env=env, ignore_reinit_error=True, log_to_driver=False),
                         RAY_INIT_TIMEOUT_S)
        #: the GCS address the monitor knocks on for this backend's queued runs
        self.gcs = _connected_gcs(ray) or target or given
        self.actor_cls = ray.remote(num_cpus=1, num_gpus=num_gpus, max_restarts=0)(_RunActor)

    def submit(self, run: Run, *, resume: bool = False) -> str:
        name = f"kdci-{run.run_id}-{int(time.time() * 1000)}"
        self.actor_cls.options(name=name, lifetime="detached").remote(
            run.run_id, str(self.store.home), resume)
        try:
            run.set_status(QUEUED, expect=(QUEUED,), pid=None, host=None, backend=self.name, ray_actor=name,
                           ray_address=self.address, ray_gcs=self.gcs, submitted_at=time.time(),
                           submitted_from=socket.gethostname(), error=None)
        except StatusConflict:  # cancelled meanwhile: the actor finds it so and ends at once
            pass
        return name


def _connected_gcs(ray) -> str | None:
    try:
        return ray.get_runtime_context().gcs_address
    except Exception:  # noqa: BLE001  (Ray Client mode has none; the given address stands)
        return None
