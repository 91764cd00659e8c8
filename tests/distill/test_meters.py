"""Loss means stay on the device between reads and catch a non-finite loss at the read."""

from __future__ import annotations

import pytest
import torch

from kdci_core.distill import Callback, Distiller
from kdci_core.distill.meters import LossMeans
from tests.helpers import tiny_config


def test_means_over_the_window_then_reset():
    m = LossMeans()
    for v in (1.0, 2.0, 6.0):
        m.add({"kd": torch.tensor(v), "loss": torch.tensor(2 * v)})
    assert m.pop(step=2) == {"kd": 3.0, "loss": 6.0}
    assert m.pop(step=3) == {}


def test_a_non_finite_loss_is_reported_with_its_steps():
    m = LossMeans()
    m.add({"loss": torch.tensor(1.0)})
    m.add({"loss": torch.tensor(float("nan"))})
    with pytest.raises(FloatingPointError, match="within steps 9-10.*--lr"):
        m.pop(step=10)


class Steps(Callback):
    def __init__(self):
        self.kinds, self.logs = set(), []

    def on_step_end(self, step, metrics):
        self.kinds |= {type(v) for v in metrics.values()}

    def on_log(self, record):
        self.logs.append(record)


def test_the_loop_hands_tensors_per_step_and_numbers_per_log(builtin):
    spy = Steps()
    result = Distiller(tiny_config(kdci=False, log_every=3)).fit(callbacks=[spy])
    assert spy.kinds == {torch.Tensor}  # no float() per step: no host sync per step
    assert [r["step"] for r in spy.logs] == [3, 6, 9]  # 2 epochs x 5 steps
    assert all(isinstance(r["loss"], float) for r in spy.logs)
    assert all(isinstance(h.loss, float) for h in result.history)
    spy = Steps()
    Distiller(tiny_config(kdci=False, log_every=0)).fit(callbacks=[spy])
    assert spy.logs == []
