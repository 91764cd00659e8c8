"""``--compile``: the student step's forwards through torch.compile, with an eager fallback that
warns and records why (a real compile takes minutes on a 2-core CPU: measured by hand, 176 s for
40 DFND steps, same losses as eager to 1e-6; the tests fake the compiler)."""

from __future__ import annotations

import pytest
import torch

from kdci_core.distill import Distiller
from kdci_core.distill.config import DistillConfig, command_line
from kdci_core.models.compiled import CompiledOrEager
from tests.helpers import tiny_config


def _broken_at_first_call(module):
    def call(*args, **kwargs):
        raise RuntimeError("no C++ compiler found\nlong details")
    return call


def test_a_failed_compile_falls_back_to_eager_with_a_warning_and_the_same_run(builtin, monkeypatch):
    cfg = tiny_config(method="dfnd", kdci=True, k=4, epochs=1, steps_per_epoch=4)
    eager = Distiller(cfg).fit()
    monkeypatch.setattr(torch, "compile", _broken_at_first_call)
    with pytest.warns(RuntimeWarning, match="could not be compiled .*no C\\+\\+ compiler found"):
        compiled = Distiller(DistillConfig.from_dict({**cfg.to_dict(), "compile": True})).fit()
    assert compiled.compiled == {"student": False, "teacher": False,
                                    "fallback": "RuntimeError: no C++ compiler found"}
    assert compiled.student_accuracy == eager.student_accuracy
    assert [h.loss for h in compiled.history] == [h.loss for h in eager.history]
    assert eager.compiled is None


def test_compile_refused_up_front_also_falls_back(monkeypatch):
    def refuse(module):
        raise RuntimeError("Windows not yet supported for torch.compile")
    monkeypatch.setattr(torch, "compile", refuse)
    layer = torch.nn.Linear(3, 2)
    with pytest.warns(RuntimeWarning, match="Windows"):
        wrapped = CompiledOrEager(layer, True, what="student")
    x = torch.ones(1, 3)
    assert not wrapped.active and torch.equal(wrapped(x), layer(x))


def test_a_working_compile_is_used_after_its_first_call(monkeypatch):
    calls = []

    def fake_compile(module):
        def call(*args):
            calls.append(1)
            return module(*args)
        return call
    monkeypatch.setattr(torch, "compile", fake_compile)
    layer = torch.nn.Linear(3, 2)
    wrapped = CompiledOrEager(layer, True)
    for _ in range(3):
        wrapped(torch.ones(1, 3))
    assert wrapped.active and len(calls) == 3
    assert list(layer.state_dict()) == ["weight", "bias"]  # the module's own keys, no _orig_mod.


def test_compile_is_recorded_and_reproduced_by_the_command_line():
    cfg = DistillConfig(compile=True)
    argv = command_line(cfg.to_dict())
    assert "--compile" in argv and "--compile" not in command_line(DistillConfig().to_dict())
