"""A run's ``worker.log`` says what its worker does (issue 22: it was empty for every normal run):
the method's long steps at a bounded rate, with their end, and the warnings raised meanwhile,
whatever the backend. The clock is injected: nothing here waits on time."""

from __future__ import annotations

import re
import warnings

import pytest

from kdci_core.distill import EpochRecord
from kdci_core.runs.worklog import ProgressLog, epoch_text, warnings_logged


@pytest.fixture
def run(store):
    from kdci_core.distill import DistillConfig

    cfg = DistillConfig(teacher="builtin", dataset="digits", method="deepinv", kdci=True)
    return store.create(cfg.to_dict())


def lines(run) -> list[str]:
    """The log's lines without their ``[time pid N]`` prefix."""
    return [re.sub(r"^\[[^\]]*\] ", "", line) for line in run.log_tail(100).splitlines()]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_long_steps_are_said_at_most_once_per_interval_with_their_end(run):
    clock, passed = Clock(), []
    log = ProgressLog(run, lambda *a: passed.append(a), every=10, clock=clock)
    for step in range(1, 5):  # a quick action: no line at all
        log(step, 4, "DeepInversion: synthesis round 1")
    assert lines(run) == []
    for step in range(1, 100):  # a long one: 1 s a step
        clock.now += 1
        log(step, 100, "DeepInversion: synthesis round 2 (g_steps)")
    clock.now += 1
    log(100, 100, "DeepInversion: synthesis round 2 (g_steps)")
    said = lines(run)
    progress = [s for s in said if not s.endswith("done (100)")]
    assert len(progress) == 9 and progress[0] == "DeepInversion: synthesis round 2 (g_steps): 10/100"
    assert said[-1] == "DeepInversion: synthesis round 2 (g_steps): done (100)"
    assert len(passed) == 104  # every report still reaches the bar it wraps


def test_a_step_that_never_had_a_line_has_no_end_line(run):
    clock = Clock()
    log = ProgressLog(run, None, every=10, clock=clock)
    clock.now = 5
    log(1, 1, "student steps")
    assert lines(run) == []


@pytest.mark.parametrize("echo", [False, True])
def test_warnings_raised_meanwhile_go_to_the_log(run, echo, recwarn):
    shown = []
    before = warnings.showwarning
    warnings.showwarning = lambda *a, **k: shown.append(a[0])
    try:
        with warnings_logged(run, echo=echo):
            warnings.warn("the teacher's BatchNorm has no running statistics", UserWarning)
        after = warnings.showwarning
    finally:
        warnings.showwarning = before
    assert lines(run) == ["warning: UserWarning: the teacher's BatchNorm has no running statistics"]
    assert len(shown) == (1 if echo else 0)  # a local worker's stderr is the log itself: no copy
    assert after is not None and after.__name__ == "<lambda>"  # put back as it was


def test_an_epoch_line_names_its_numbers():
    text = epoch_text(EpochRecord.from_json({"epoch": 3, "step": 150, "loss": 0.41234, "student_accuracy": 45.2,
                                             "wall_time_s": 1.0, "lr": 0.1, "kdci_compensation": 0.0123}), 10)
    assert text == "epoch 3/10  step 150  loss 0.4123  student 45.20%  KDCI compensation 0.0123"
