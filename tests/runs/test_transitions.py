"""One state machine for run statuses (status.TRANSITIONS), every change checked under the run's
lock: a cancel acknowledged after a resume always wins, whenever the resumed worker starts."""

from __future__ import annotations

import random
import threading
import time

import pytest

from kdci_core.runs import STATUSES, TERMINAL, cancel, execute, reconcile, resume
from tests.helpers import tiny_config


def test_the_transitions_name_every_status_and_no_way_back_from_an_end():
    from kdci_core.runs.status import FINISHED, QUEUED, RUNNING, TRANSITIONS

    assert set(TRANSITIONS) == set(STATUSES)
    assert all(set(targets) <= set(STATUSES) for targets in TRANSITIONS.values())
    assert TRANSITIONS[FINISHED] == ()
    for status in TERMINAL:  # an ended run moves only through a resume's claim
        assert set(TRANSITIONS[status]) <= {QUEUED}
    assert RUNNING in TRANSITIONS[QUEUED] and QUEUED not in TRANSITIONS[RUNNING]


def test_a_change_the_machine_refuses_raises_and_writes_nothing(store):
    from kdci_core.runs.status import StatusConflict

    run = store.create(tiny_config().to_dict())
    run.set_status("cancelled", error="by the user")
    before = run.path("status.json").read_bytes()
    for wanted, expect in (("running", None), ("finished", None), ("queued", ("queued",))):
        with pytest.raises(StatusConflict, match="it is cancelled; it cannot become"):
            run.set_status(wanted, expect=expect)
    assert run.path("status.json").read_bytes() == before


def test_a_worker_that_starts_after_a_cancel_leaves_the_run_cancelled(store):
    """A late worker (a Ray actor scheduled after the cancel) starts nothing and says why."""
    run = store.create(tiny_config().to_dict())
    assert cancel(store, run.run_id) == "cancelled"
    assert execute(run, backend="ray") is None
    st = run.status()
    assert st["status"] == "cancelled" and [t["status"] for t in st["transitions"]] == ["queued", "cancelled"]
    assert "not started" in run.path("worker.log").read_text()


class LateStartBackend:
    """Starts the worker in a thread after a random delay, with no pid known before it starts:
    how a Ray actor starts (the race of issue 19: resume, then cancel at once)."""

    name = "thread"

    def __init__(self, store, rng):
        self.store, self.rng, self.threads = store, rng, []

    def submit(self, run, *, resume=False):
        run.set_status("queued", backend=self.name, submitted_at=time.time())
        delay = self.rng.uniform(0.0, 0.02)

        def work():
            time.sleep(delay)
            execute(run, resume=resume, backend=self.name)
        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        self.threads.append(thread)


def test_cancel_acknowledged_after_a_resume_always_wins(store):
    # a long run (it restarts from step 0): a worker that starts first is still in its first
    # steps when the cancel lands, so ``cancelling`` is as binding as ``cancelled``
    run = store.create(tiny_config(epochs=1, steps_per_epoch=400).to_dict())
    run.set_status("failed", error="worker lost")
    rng = random.Random(19)
    backend, answers = LateStartBackend(store, rng), []
    for attempt in range(20):
        resume(store, run.run_id, backend)
        time.sleep(rng.choice([0.0, 0.0, 0.0, 0.01, 0.05, 0.2, 0.5]))  # the worker may be starting
        answers.append(cancel(store, run.run_id))  # acknowledged: after the resume returned
        backend.threads[-1].join(timeout=120)
        assert not backend.threads[-1].is_alive()
        reconcile(store)
        st = run.status()
        assert st["status"] == "cancelled", (attempt, answers[-1], [t["status"] for t in st["transitions"]])
    assert set(answers) <= {"cancelled", "cancelling"}
