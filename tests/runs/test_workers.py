"""Background runs: detached workers, heartbeats, kill -9 -> failed within 10 s, resume to the
planned step, cancel, a concurrency-limited queue, a restarted store, and resume that continues
exactly where an interrupted run stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from kdci_core.distill.state import flatten, load_state, save_state, unflatten
from kdci_core.distill import Callback
from kdci_core.errors import InputError
from kdci_core.methods import METHODS
from kdci_core.runs import (CHECKPOINT, Cancelled, LocalBackend, RunStore, cancel, claim_resume, execute,
                            launch, launch_grid, reconcile, resume, wait_for)
from tests.helpers import tiny_config

SLOW = {"g_steps": 5, "synth_every": 5, "synth_batch": 32}


def _wait_status(store, run_id, wanted, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        reconcile(store)
        st = store.get(run_id).status()
        if st["status"] in wanted:
            return st, time.time()
        time.sleep(0.2)
    raise AssertionError(f"{run_id} never reached {wanted}: {store.get(run_id).status()}")


def _wait_metrics(store, run_id, n, timeout=90.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(store.get(run_id).metrics()) >= n:
            return
        time.sleep(0.2)
    raise AssertionError(f"{run_id}: fewer than {n} metrics records after {timeout} s")


def test_tree_round_trip(tmp_path):
    layer = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(layer.parameters())
    opt.zero_grad()
    layer(torch.ones(1, 3)).sum().backward()
    opt.step()
    tree = {"a": [torch.ones(2), (1, 2.5, None)], 3: "x", "opt": opt.state_dict(), "flag": True}
    tensors = {}
    back = unflatten(flatten(tree, tensors), tensors)
    assert back["a"][1] == (1, 2.5, None) and back[3] == "x" and back["flag"] is True
    assert set(back["opt"]["state"]) == {0, 1}  # int keys survive
    save_state(tree, tmp_path / "s.safetensors")
    again = load_state(tmp_path / "s.safetensors")
    assert torch.equal(again["opt"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="KDCI training state"):
        load_state(tmp_path / "bad.safetensors")


@pytest.mark.parametrize("method", METHODS.names())
def test_resume_continues_exactly(store, method):
    """Interrupt after epoch 1, resume: the final student equals an uninterrupted run's."""
    params = {"deepinv": SLOW, "dfnd": {"pool_size": 600, "n_select": 200},
              "dafl": {"synth_batch": 32}, "fast": {"synth_batch": 32, "warmup": 1, "g_steps": 2,
                                                    "synth_every": 3},
              "cmi": {"synth_batch": 32, "g_steps": 3, "synth_every": 4},
              "mosaickd": {"pool_size": 600, "n_select": 200, "synth_batch": 16, "g_steps": 1},
              "plain": {"pool_size": 300, "n_select": 300}}[method]
    cfg = tiny_config(method=method, kdci=True, k=4, method_params=params, epochs=3, steps_per_epoch=4)
    whole = execute(store.create(cfg.to_dict()), backend="inline")

    class StopAfterFirst(Callback):  # runs after the recorder committed epoch 1
        def on_checkpoint(self, state):
            if len(state["history"]) == 1:
                raise Cancelled("test interruption")

    run = store.create(cfg.to_dict())
    assert execute(run, backend="inline", callbacks=[StopAfterFirst()]) is None
    assert run.status()["status"] == "cancelled" and run.path(CHECKPOINT).exists()
    resumed = execute(claim_resume(store, run.run_id)[0], resume=True, backend="inline")
    assert resumed.resumed_from_step == 4 and [h.step for h in resumed.history] == [4, 8, 12]
    assert resumed.student_accuracy == pytest.approx(whole.student_accuracy)
    assert [h.loss for h in resumed.history] == pytest.approx([h.loss for h in whole.history])
    assert [m["step"] for m in run.metrics()] == [4, 8, 12]


def test_detached_run_finishes_and_is_indexed(store):
    backend = LocalBackend(store, max_concurrent=2)
    [run_id] = launch([tiny_config(method_params=SLOW)], backend)
    states = wait_for(store, [run_id], timeout=120)
    assert states == {run_id: "finished"}
    row = store.rows()[0]
    assert row["run_id"] == run_id and row["status"] == "finished" and row["student_accuracy"] is not None
    assert (store.get(run_id).root / "worker.log").exists()
    import plotly.io
    fig = plotly.io.read_json(store.get(run_id).path("figures") / "student_accuracy.json")
    assert len(fig.data) == 1 and len(fig.data[0].x) == 2  # the run's curve, readable without the app


def test_kill_9_marks_failed_within_10s_and_resume_finishes(store):
    cfg = tiny_config(method_params=SLOW, epochs=6, steps_per_epoch=40)
    [run_id] = launch([cfg], LocalBackend(store, max_concurrent=2))
    _wait_metrics(store, run_id, 1)
    pid = store.get(run_id).status()["pid"]
    os.kill(pid, signal.SIGKILL)
    killed = time.time()
    st, seen = _wait_status(store, run_id, ("failed",), timeout=15)
    assert seen - killed < 10 and "worker lost" in st["error"]
    resume(store, run_id, LocalBackend(store, max_concurrent=2))
    assert wait_for(store, [run_id], timeout=180) == {run_id: "finished"}
    result = store.get(run_id).result()
    assert result["history"][-1]["step"] == 6 * 40 and result["resumed_from_step"] >= 40
    assert [m["epoch"] for m in store.get(run_id).metrics()] == list(range(1, 7))


def test_cancel_running_and_queued(store):
    backend = LocalBackend(store, max_concurrent=1)
    long = tiny_config(method_params=SLOW, epochs=50, steps_per_epoch=40)
    a, b = launch([long, long], backend)
    deadline = time.time() + 120
    while not (store.get(a).metrics() or store.get(b).metrics()) and time.time() < deadline:
        time.sleep(0.2)
    # whichever took the one slot first runs; the other waits, queued
    first, second = (a, b) if store.get(a).metrics() else (b, a)
    assert store.get(second).status()["status"] == "queued"
    assert cancel(store, second) in ("cancelling", "cancelled")
    assert cancel(store, first) == "cancelling"
    assert wait_for(store, [first, second], timeout=60) == {first: "cancelled", second: "cancelled"}
    with pytest.raises(InputError, match="only queued or running"):
        cancel(store, first)


def test_four_concurrent_runs_and_a_restarted_store(store):
    backend = LocalBackend(store, max_concurrent=4)
    ids = launch([tiny_config(method="deepinv", kdci=k, method_params=SLOW) for k in (True, False)]
                 + [tiny_config(method="dfnd", kdci=k) for k in (True, False)], backend)
    assert wait_for(store, ids, timeout=240) == {i: "finished" for i in ids}
    fresh = RunStore(store.home)  # what a restarted server sees
    rows = {r["run_id"]: r for r in fresh.rows()}
    assert set(ids) <= set(rows)
    for i in ids:
        assert rows[i]["status"] == "finished" and len(fresh.get(i).metrics()) == 2
    (store.home / "index.sqlite").unlink()  # the index is a cache: rebuilt from the folders
    assert {r["run_id"] for r in RunStore(store.home).rows()} >= set(ids)


def test_launch_grid_validates_everything_first(store):
    backend = LocalBackend(store, max_concurrent=1)
    with pytest.raises(InputError):
        launch_grid(tiny_config(), backend, methods=["deepinv", "nope"])
    assert store.rows() == []


def test_resume_rejects_finished_run(store):
    run = store.create(tiny_config().to_dict())
    run.set_status("running")
    run.set_status("finished")
    with pytest.raises(InputError, match="only failed or cancelled"):
        resume(store, run.run_id, LocalBackend(store))


def test_ray_backend_runs_a_digits_run(store):
    """Connected from a thread that ends at once, as a Streamlit page's script run does: an
    embedded Ray instance would die with that thread; the backend's own head must not."""
    ray = pytest.importorskip("ray", reason="ray is not installed")
    from kdci_core.runs.backends.ray import RayBackend

    try:  # `ray stop` below ends every Ray on this machine: never someone else's
        ray.init(address="auto", log_to_driver=False)
    except ConnectionError:
        pass
    else:
        ray.shutdown()
        pytest.skip("a Ray cluster already runs on this machine; this test starts and stops its own")
    launched = {}

    def page_script_run():
        backend = RayBackend(store)
        launched["ids"] = launch([tiny_config(method_params=SLOW, kdci=k) for k in (True, False)], backend)

    try:
        thread = threading.Thread(target=page_script_run)
        thread.start()
        thread.join()
        ids = launched["ids"]
        assert wait_for(store, ids, timeout=240) == {i: "finished" for i in ids}
        for i in ids:
            st = store.get(i).status()
            assert st["backend"] == "ray" and st["ray_actor"].startswith(f"kdci-{i}")
            assert len(store.get(i).metrics()) == 2 and (store.get(i).root / "student.safetensors").exists()
    finally:
        ray.shutdown()
        subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "stop", "--force"],
                       capture_output=True, timeout=120)


def test_index_follows_metrics_as_they_arrive(store):
    run = store.create(tiny_config().to_dict())
    run.append_metrics({"epoch": 1, "step": 5, "student_accuracy": 33.0, "loss": 1.0})
    row = store.rows()[0]
    assert row["last_epoch"] == 1 and row["student_accuracy"] == 33.0 and row["status"] == "queued"
    with open(run.path("metrics.jsonl"), "a") as f:
        f.write('{"epoch": 2, "step": 10, "stud')  # a worker killed mid-write
    assert [m["epoch"] for m in run.metrics()] == [1]
