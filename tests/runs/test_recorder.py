"""The run recorder commits an epoch as checkpoint, then metrics line, then status, and a resume
rewrites the metrics from the checkpoint: a worker killed anywhere in an epoch's commit leaves a
history of exactly the epochs the checkpoint holds, never a silent restart from step 0."""

from __future__ import annotations

import pytest

from kdci_core.distill import Callback, EpochRecord
from kdci_core.runs import CHECKPOINT, Cancelled, claim_resume, execute
from kdci_core.runs.recorder import EpochRecorder
from tests.helpers import tiny_config


class SpyRun:
    """Stands in for a Run: logs what the recorder writes, in order, and what was on disk then."""

    def __init__(self, root):
        self.root, self.calls = root, []

    def path(self, name):
        return self.root / name

    def append_metrics(self, record):
        self.calls.append(("metrics", record["epoch"], (self.root / CHECKPOINT).exists()))

    def set_status(self, status, **fields):
        self.calls.append(("status", status, fields["checkpoint_step"]))


def test_epoch_commit_order_checkpoint_metrics_status(tmp_path):
    run = SpyRun(tmp_path)
    rec = EpochRecorder(run)
    record = EpochRecord(epoch=1, step=5, student_accuracy=50.0, wall_time_s=1.0, lr=0.1, losses={"loss": 1.0})
    rec.on_epoch_end(record)
    rec.on_checkpoint({"step": 5, "history": [record.to_json()], "w": __import__("torch").ones(2)})
    assert run.calls == [("metrics", 1, True), ("status", "running", 5)]


class StopAt(Callback):
    """Interrupts the run right after the recorder committed epoch ``n`` (as a kill would)."""

    def __init__(self, n):
        self.n = n

    def on_checkpoint(self, state):
        if len(state["history"]) == self.n:
            raise Cancelled("test interruption")


def claimed(store, run):
    """The run made ``queued`` for its resume, as ``runs resume`` does before a worker starts
    (a worker starts only a run still queued: status.TRANSITIONS)."""
    return claim_resume(store, run.run_id)[0]


def _cfg():
    return tiny_config(kdci=True, k=4, epochs=3, steps_per_epoch=4)


def test_kill_between_checkpoint_and_metrics_resumes_with_every_epoch(store):
    run = store.create(_cfg().to_dict())
    assert execute(run, backend="inline", callbacks=[StopAt(2)]) is None
    lines = run.path("metrics.jsonl").read_text().splitlines()
    run.path("metrics.jsonl").write_text(lines[0] + "\n")  # epoch 2's line never made it
    result = execute(claimed(store, run), resume=True, backend="inline")
    assert result.resumed_from_step == 8
    assert [m["epoch"] for m in run.metrics()] == [1, 2, 3]
    assert run.metrics() == [h.to_json() for h in result.history]


def test_metrics_past_the_checkpoint_are_dropped_on_resume(store):
    run = store.create(_cfg().to_dict())
    assert execute(run, backend="inline", callbacks=[StopAt(1)]) is None
    run.append_metrics({"epoch": 2, "step": 8, "student_accuracy": 1.0, "loss": 9.0})  # no checkpoint
    result = execute(claimed(store, run), resume=True, backend="inline")
    assert result.resumed_from_step == 4
    assert [m["step"] for m in run.metrics()] == [4, 8, 12]
    assert run.metrics()[1]["loss"] != 9.0


def test_resume_without_a_checkpoint_says_so_and_restarts(store):
    run = store.create(_cfg().to_dict())
    run.set_status("failed", error="worker lost before its first epoch")
    run.append_metrics({"epoch": 1, "step": 4, "student_accuracy": 1.0, "loss": 9.0})  # torn state
    assert not run.path(CHECKPOINT).exists()
    result = execute(claimed(store, run), resume=True, backend="inline")
    assert result.resumed_from_step is None and [m["epoch"] for m in run.metrics()] == [1, 2, 3]
    assert "no checkpoint yet" in run.path("worker.log").read_text()
    assert run.status()["checkpoint_step"] == 12 and run.status()["status"] == "finished"


@pytest.mark.parametrize("options", [{"augment": "crop-flip", "correction": "balanced"},
                                     {"correction": "reweight", "k": "auto"}])
def test_resume_is_exact_with_augmentation_and_corrections(store, options):
    """The loop's own random streams (augmentation, balanced resampling) and the reweighting's
    class shares are in the checkpoint: an interrupted run ends as an uninterrupted one."""
    cfg = tiny_config(kdci=True, epochs=3, steps_per_epoch=4, **({"k": 4} | options))
    whole = execute(store.create(cfg.to_dict()), backend="inline")
    run = store.create(cfg.to_dict())
    assert execute(run, backend="inline", callbacks=[StopAt(1)]) is None
    resumed = execute(claimed(store, run), resume=True, backend="inline")
    assert resumed.student_accuracy == pytest.approx(whole.student_accuracy)
    assert [h.loss for h in resumed.history] == pytest.approx([h.loss for h in whole.history])
    assert resumed.k == whole.k


def test_step_records_progress_and_their_resume(store):
    """log_every records land in steps.jsonl with the window's loss means; progress.json counts
    the steps; a resume keeps the step records up to its checkpoint, none past it, none twice."""
    cfg = tiny_config(kdci=True, k=4, epochs=3, steps_per_epoch=4)
    cfg.log_every = 2
    run = store.create(cfg.to_dict())
    assert execute(run, backend="inline", callbacks=[StopAt(2)]) is None
    assert [r["step"] for r in run.steps()] == [2, 4, 6, 8]
    run.append_steps({"step": 10, "loss": 99.0})  # logged after the checkpoint, then killed
    progress = run.progress()
    assert progress["step"] == 8 and progress["total_steps"] == 12
    result = execute(claimed(store, run), resume=True, backend="inline")
    steps = run.steps()
    assert [r["step"] for r in steps] == [2, 4, 6, 8, 10, 12]
    assert steps[4]["loss"] != 99.0 and {"kd", "loss", "lr", "epoch", "wall_time_s"} <= set(steps[0])
    assert steps[1]["epoch"] == 1.0 and steps[2]["epoch"] == 1.5
    assert run.progress()["step"] == 12 and run.progress()["eta_s"] == 0.0
    assert run.status()["teacher_sha256"] == result.teacher_sha256
    assert run.series("step")["history"] == steps
