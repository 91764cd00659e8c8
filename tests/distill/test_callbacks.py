"""The loop's callback protocol: every event in order, stopping by ``should_stop`` and
``max_steps``, a sampling method's selection as its substitution event, and the dispatch rules."""

from __future__ import annotations

import pytest

from kdci_core.distill import EVENTS, Callback, CallbackList, Distiller
from tests.helpers import tiny_config


class Log(Callback):
    """Records (event, argument summary) for every event it sees."""

    def __init__(self):
        self.events = []

    def on_fit_start(self, distiller):
        self.events.append(("fit_start", distiller.total_steps))

    def on_substitution(self, step, images):
        self.events.append(("substitution", step, len(images)))

    def on_step_end(self, step, metrics):
        self.events.append(("step", step, sorted(metrics)))

    def on_epoch_end(self, record):
        self.events.append(("epoch", record.epoch, record.step))

    def on_checkpoint(self, state):
        self.events.append(("checkpoint", state["step"], len(state["history"])))

    def on_fit_end(self, result):
        self.events.append(("fit_end", len(result.history)))


def test_events_arrive_in_order(builtin):
    log = Log()
    cfg = tiny_config(method="deepinv", kdci=True, k=4)  # 2 epochs x 5 steps, synthesis every 5
    result = Distiller(cfg, callbacks=[log]).fit()
    ev = log.events
    assert ev[0] == ("fit_start", 10) and ev[-1] == ("fit_end", 2)
    assert [e for e in ev if e[0] == "substitution"] == [("substitution", 0, 32), ("substitution", 5, 32)]
    steps = [e for e in ev if e[0] == "step"]
    assert [e[1] for e in steps] == list(range(10))
    assert steps[0][2] == sorted(["kd", "loss"])
    # each epoch's record, then its state, right after that epoch's last step
    i = ev.index(("epoch", 1, 5))
    assert ev[i - 1] == steps[4] and ev[i + 1] == ("checkpoint", 5, 1)
    assert ev.index(("substitution", 5, 32)) > ev.index(("checkpoint", 5, 1))  # next round after
    assert [h.step for h in result.history] == [5, 10]


def test_sampling_selection_is_a_substitution_event_before_any_step(builtin):
    log = Log()
    cfg = tiny_config(method="dfnd", kdci=False, epochs=1)
    Distiller(cfg, callbacks=[log]).fit()
    assert log.events[1] == ("substitution", 0, 200)  # n_select=200 of tiny_config's pool
    assert sum(e[0] == "substitution" for e in log.events) == 1


class StopAfter(Callback):
    def __init__(self, n):
        self.n, self.seen = n, 0

    def on_step_end(self, step, metrics):
        self.seen += 1
        self.should_stop = self.seen >= self.n


def test_should_stop_and_max_steps_end_the_loop(builtin):
    d = Distiller(tiny_config(kdci=False))
    stop = StopAfter(3)
    result = d.fit(callbacks=[stop])
    assert stop.seen == 3 and result.history == ()  # stopped inside epoch 1
    log = Log()
    result = Distiller(tiny_config(kdci=False), callbacks=[log]).fit(max_steps=5)
    assert [h.epoch for h in result.history] == [1]
    assert sum(e[0] == "step" for e in log.events) == 5


def test_fit_callbacks_join_only_that_fit(builtin):
    own, extra = Log(), Log()
    d = Distiller(tiny_config(kdci=False, epochs=1), callbacks=[own])
    d.fit(callbacks=[extra])
    assert own.events == extra.events and len(d.callbacks.callbacks) == 1


def test_base_callback_has_a_no_op_for_every_event():
    cb = Callback()
    for event in EVENTS:
        assert getattr(cb, event)(*([None] * (getattr(Callback, event).__code__.co_argcount - 1))) is None
    assert cb.should_stop is False
    with pytest.raises(ValueError, match="unknown loop event"):
        CallbackList([cb]).dispatch("on_batch_start")
