"""Ray under faults: a launch to a cluster that does not answer fails within a stated timeout;
runs queued on a cluster that is gone become ``failed`` with the reason after a bounded wait;
a cancel right after a resume wins on a real two-node cluster too (``slow``: a local cluster)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from kdci_core.runs import cancel, reconcile, resume
from tests.helpers import REPO, tiny_config

#: the monitor's stated bound for a queued Ray run whose actor never started (RAY_START_GRACE_S
#: is 30 s): a listing this long after the submission decides
LATER = 120.0
#: how long a launch to a cluster that does not answer may take to fail: RAY_CONNECT_TIMEOUT_S
#: (5 s) and a margin; ray.init alone kept trying for more than 90 s
GIVE_UP_S = 10.0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def _queued_ray_run(store, gcs: str):
    run = store.create(tiny_config().to_dict())
    run.set_status("queued", backend="ray", ray_address=gcs, ray_gcs=gcs, ray_actor="kdci-x",
                   submitted_at=time.time(), pid=None, host=None)
    return run


def test_a_queued_ray_run_on_a_cluster_that_does_not_answer_fails_with_the_reason(store):
    gcs = f"127.0.0.1:{_closed_port()}"
    run = _queued_ray_run(store, gcs)
    assert reconcile(store) == []  # just submitted: its actor may still be starting
    assert reconcile(store, now=time.time() + LATER) == [run.run_id]
    st = run.status()
    assert st["status"] == "failed" and f"Ray cluster at {gcs} unreachable" in st["error"], st


def test_a_queued_ray_run_on_a_cluster_that_answers_stays_queued(store):
    with socket.socket() as listener:  # a cluster that answers, whose actor waits for resources
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        run = _queued_ray_run(store, f"127.0.0.1:{listener.getsockname()[1]}")
        assert reconcile(store, now=time.time() + LATER) == []
    assert run.status()["status"] == "queued"


CONNECT = """
    import os, sys, time
    import kdci_core.runs.backends.ray as ray_backend
    from kdci_core.errors import InputError
    from kdci_core.runs import RunStore
    ray_backend.RAY_INIT_TIMEOUT_S = float(os.environ["INIT_TIMEOUT"])
    t0 = time.time()
    try:
        ray_backend.RayBackend(RunStore(os.environ["HOME_DIR"]), address=os.environ["ADDRESS"])
    except InputError as exc:
        print(f"REFUSED {time.time() - t0:.1f} {exc}")
        sys.stdout.flush()
        os._exit(2)
    print("CONNECTED")
"""


def _connect(tmp_path, address: str, init_timeout: float = 60.0) -> tuple[float, str]:
    """A ``--backend ray`` launch's connection, in its own process (a hung ``ray.init`` would
    keep this one); the seconds it took to give up and why. Fails if it never gives up."""
    pytest.importorskip("ray", reason="ray is not installed")
    env = {**os.environ, "HOME_DIR": str(tmp_path / "home"), "ADDRESS": address,
           "INIT_TIMEOUT": str(init_timeout), "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    try:
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(CONNECT)], capture_output=True,
                              text=True, env=env, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail(f"a launch to {address} was still trying after 90 s")
    refused = [ln for ln in proc.stdout.splitlines() if ln.startswith("REFUSED")]
    assert refused, f"a launch to {address} did not fail: {proc.stdout[-1000:]}{proc.stderr[-2000:]}"
    line = refused[-1]
    _, seconds, why = line.split(" ", 2)
    return float(seconds), why


def test_a_launch_to_a_cluster_that_does_not_answer_fails_within_the_timeout(tmp_path):
    seconds, why = _connect(tmp_path, f"127.0.0.1:{_closed_port()}")
    assert seconds <= GIVE_UP_S and "cannot connect to Ray" in why, (seconds, why)


def test_ray_init_is_bounded_when_the_port_answers_but_no_ray_does(tmp_path):
    with socket.socket() as silent:  # accepts connections (the kernel does), says nothing
        silent.bind(("0.0.0.0", 0))
        silent.listen(64)
        seconds, why = _connect(tmp_path, f"127.0.0.1:{silent.getsockname()[1]}", init_timeout=5)
    assert seconds < 5 + 10 and "had not finished after 5 s" in why, (seconds, why)


# --- on a real two-node cluster ----------------------------------------------------------------

@pytest.fixture
def cluster():
    """Two Ray nodes of one CPU each on this machine, started and stopped by this test alone
    (ray.cluster_utils: no `ray stop`, which would end every Ray here)."""
    ray = pytest.importorskip("ray", reason="ray is not installed")
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    os.environ.pop("RAY_ADDRESS", None)
    nodes = Cluster(initialize_head=True, connect=False,
                    head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes()
    yield nodes
    ray.shutdown()
    nodes.shutdown()


def _gone(ray, actor: str, timeout: float = 120.0) -> None:
    """Wait until the named detached actor has ended (it exits once its run is decided)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            ray.get_actor(actor)
        except ValueError:
            return
        time.sleep(0.2)
    raise AssertionError(f"actor {actor} still alive after {timeout} s")


@pytest.mark.slow
def test_resume_then_cancel_on_ray_ends_cancelled(store, cluster):
    import ray

    from kdci_core.runs.backends.ray import RayBackend

    backend = RayBackend(store, address=cluster.address)
    run = store.create(tiny_config(epochs=1, steps_per_epoch=400).to_dict())
    run.set_status("failed", error="worker lost")
    for attempt in range(5):
        resume(store, run.run_id, backend)
        answer = cancel(store, run.run_id)
        _gone(ray, run.status()["ray_actor"])
        reconcile(store)
        st = run.status()
        assert st["status"] == "cancelled", (attempt, answer, [t["status"] for t in st["transitions"]])


@pytest.mark.slow
def test_queued_runs_on_a_cluster_that_is_gone_fail_and_a_new_launch_fails_fast(store, cluster, tmp_path):
    import ray

    from kdci_core.runs import launch
    from kdci_core.runs.backends.ray import RayBackend

    backend = RayBackend(store, address=cluster.address, num_gpus=1)  # no GPU here: they wait
    ids = launch([tiny_config(seed=s) for s in (0, 1)], backend)
    gcs = cluster.address  # the head's GCS: what the runs record (``ray_gcs``) and the monitor knocks on
    assert reconcile(store, now=time.time() + LATER) == []  # the cluster answers: they wait
    ray.shutdown()
    cluster.shutdown()  # the head is gone
    assert sorted(reconcile(store, now=time.time() + LATER)) == sorted(ids)
    for i in ids:
        st = store.get(i).status()
        assert st["status"] == "failed" and f"Ray cluster at {gcs} unreachable" in st["error"], st
    seconds, why = _connect(tmp_path, gcs)
    assert seconds <= GIVE_UP_S and "cannot connect to Ray" in why, (seconds, why)
