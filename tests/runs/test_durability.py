"""Runs that never silently start over: kill -9 at the moments that matter, then resume, until
the history is exactly the planned epochs; two resumes at once start one worker; SIGTERM ends a
worker ``cancelled``. The kills inside short windows come from the worker itself
(common.faults, ``KDCI_FAULT``: SIGKILL, as ``kill -9`` from outside); one comes from outside
at a random moment."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from kdci_core.common.faults import ENV
from kdci_core.errors import InputError
from kdci_core.runs import (CHECKPOINT, Cancelled, LocalBackend, claim_resume, execute, launch, reconcile,
                            resume, wait_for)
from kdci_core.distill import Callback
from tests.helpers import tiny_config

SYNTH = {"g_steps": 4, "synth_every": 3, "synth_batch": 24}
EPOCHS, STEPS = 5, 6


def _wait(store, run_id, wanted, timeout=120.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        reconcile(store)
        st = store.get(run_id).status()
        if st["status"] in wanted:
            return st
        time.sleep(0.2)
    raise AssertionError(f"{run_id} never reached {wanted}: {store.get(run_id).status()}\n"
                         + store.get(run_id).log_tail())


def _epochs(store, run_id) -> list[int]:
    return [m["epoch"] for m in store.get(run_id).metrics()]


def test_kill_9_five_times_then_resume_ends_with_exactly_the_planned_epochs(store, monkeypatch):
    backend = LocalBackend(store, max_concurrent=2)
    cfg = tiny_config(method_params=SYNTH, kdci=True, k=4, epochs=EPOCHS, steps_per_epoch=STEPS)

    # 1. during the first synthesis, before any checkpoint: the resume says it restarts
    monkeypatch.setenv(ENV, "progress:2")
    [run_id] = launch([cfg], backend)
    assert "died" in _wait(store, run_id, ("failed",))["error"]
    assert not store.get(run_id).path(CHECKPOINT).exists()
    _, _, plan = claim_resume(store, run_id)
    assert "no checkpoint" in plan and "restarts from step 0" in plan
    # 2. just after epoch 1's metrics line, before its status
    monkeypatch.setenv(ENV, "after_metrics:1")
    backend.submit(store.get(run_id), resume=True)
    _wait(store, run_id, ("failed",))
    run = store.get(run_id)
    assert run.status()["restarted_from_scratch"] is True
    assert "no checkpoint yet" in run.path("worker.log").read_text()
    assert _epochs(store, run_id) == [1] and run.status().get("epoch") is None  # status not written
    # 3. inside epoch 2's checkpoint write (temporary file written, not renamed)
    monkeypatch.setenv(ENV, "checkpoint_write:1")
    assert "checkpoint at step" in resume(store, run_id, backend)
    _wait(store, run_id, ("failed",))
    assert _epochs(store, run_id) == [1]
    # 4. from outside, at a random moment after the worker went past its checkpoint
    monkeypatch.delenv(ENV)
    resume(store, run_id, backend)
    deadline = time.time() + 120
    while store.get(run_id).progress().get("step", 0) <= STEPS and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(random.Random(15).uniform(0.0, 0.4))
    os.kill(store.get(run_id).status()["pid"], signal.SIGKILL)
    _wait(store, run_id, ("failed", "finished"))
    # 5. during a later synthesis
    monkeypatch.setenv(ENV, "progress:4")
    if store.get(run_id).status()["status"] == "failed":
        resume(store, run_id, backend)
        _wait(store, run_id, ("failed", "finished"))
    monkeypatch.delenv(ENV)
    if store.get(run_id).status()["status"] == "failed":
        resume(store, run_id, backend)
    assert wait_for(store, [run_id], timeout=180) == {run_id: "finished"}
    run = store.get(run_id)
    assert _epochs(store, run_id) == list(range(1, EPOCHS + 1))
    assert [m["step"] for m in run.metrics()] == [STEPS * e for e in range(1, EPOCHS + 1)]
    assert [h["epoch"] for h in run.result()["history"]] == list(range(1, EPOCHS + 1))
    assert not [p.name for p in run.root.iterdir() if p.name.endswith(".tmp")]  # a resume sweeps them


class StopAfterFirst(Callback):
    def on_checkpoint(self, state):
        if len(state["history"]) == 1:
            raise Cancelled("test interruption")


def _cancelled_run(store):
    run = store.create(tiny_config(epochs=2, steps_per_epoch=3).to_dict())
    assert execute(run, backend="inline", callbacks=[StopAfterFirst()]) is None
    return run


def test_two_resumes_at_the_same_instant_start_one_worker(store):
    run = _cancelled_run(store)
    submitted, barrier, errors = [], threading.Barrier(2), []

    class Counting:
        def submit(self, run, *, resume=False):
            submitted.append(run.run_id)

    def go():
        barrier.wait()
        try:
            resume(store, run.run_id, Counting())
        except InputError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert submitted == [run.run_id] and len(errors) == 1 and "it is queued" in errors[0]


def test_two_resume_commands_at_once_start_one_worker(store):
    """The same through two ``runs resume`` processes (the lock is a file lock, not a thread's)."""
    run = _cancelled_run(store)
    cmd = [sys.executable, "-m", "kdci_core", "runs", "resume", run.run_id]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "KDCI_HOME": str(store.home)}) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    assert any("only failed or cancelled runs can be resumed" in err for _, err in outs)
    assert wait_for(store, [run.run_id], timeout=120) == {run.run_id: "finished"}
    assert run.path("worker.log").read_text().count("resume: from the checkpoint") == 1
    assert [m["epoch"] for m in run.metrics()] == [1, 2]


def test_a_failed_submit_leaves_the_run_resumable(store):
    run = _cancelled_run(store)

    class Broken:
        def submit(self, run, *, resume=False):
            raise OSError("no process could be started")

    with pytest.raises(OSError):
        resume(store, run.run_id, Broken())
    st = run.status()
    assert st["status"] == "cancelled" and "could not start a worker" in st["error"]


def test_resume_refuses_a_damaged_checkpoint_and_says_how_to_restart(store):
    run = _cancelled_run(store)
    run.path(CHECKPOINT).write_bytes(b"\x00" * 64)
    with pytest.raises(InputError, match="checkpoint is damaged.*delete"):
        claim_resume(store, run.run_id)
    assert run.status()["status"] == "cancelled"


@pytest.mark.parametrize("when", ["starting", "running"])
def test_a_sigterm_worker_ends_cancelled(store, when):
    cfg = tiny_config(method_params=SYNTH, k=4, epochs=40, steps_per_epoch=20)
    [run_id] = launch([cfg], LocalBackend(store, max_concurrent=2))
    if when == "running":
        _wait(store, run_id, ("running",))
        deadline = time.time() + 60
        while not store.get(run_id).progress() and time.time() < deadline:
            time.sleep(0.05)
    os.kill(store.get(run_id).status()["pid"], signal.SIGTERM)
    st = _wait(store, run_id, ("cancelled", "failed"))
    assert st["status"] == "cancelled" and "SIGTERM" in st["error"], st
