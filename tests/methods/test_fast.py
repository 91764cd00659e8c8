"""Fast (meta-learned generator): meta updates, BN-momentum carry-over, synthesis, end to end."""

import copy

import pytest
import torch
from torch import nn

from kdci_core.data import DatasetInfo
from kdci_core.distill import DistillConfig
from kdci_core.errors import InputError
from kdci_core.methods import METHODS, MethodContext
from kdci_core.models import build_model
from kdci_core.teachers import freeze
from kdci_core.runs import run_inline

INFO = DatasetInfo("tiny", 3, 1, 8, (0.5,), (0.25,), ("a", "b", "c"))
TINY = {"synth_batch": 8, "g_steps": 2, "nz": 8, "ngf": 4, "warmup": 0}


def _fast(**params):
    teacher = freeze(build_model("lenet5", num_classes=3, in_channels=1))
    ctx = MethodContext(teacher=teacher, info=INFO, device=torch.device("cpu"), seed=0, tau=4.0,
                        params={**TINY, **params})
    return METHODS.get("fast")(ctx)


def _student():
    return build_model("lenet5_half", num_classes=3, in_channels=1).eval()


def test_registered_with_kind_k_and_sources():
    cls = METHODS.get("fast")
    assert cls.kind == "generation" and cls.default_k == 32 and cls.default_tau == 20.0
    assert set(cls.sources) == set(cls.defaults)


def test_reptile_moves_meta_a_fraction_towards_clone():
    m = _fast(meta="reptile", lr_meta=0.25)
    before = copy.deepcopy(m.generator)
    clone = copy.deepcopy(m.generator)
    with torch.no_grad():
        for p in clone.parameters():
            p.add_(1.0)
    m.meta_update(clone)
    for b, a in zip(before.parameters(), m.generator.parameters()):
        assert torch.allclose(a, b + 0.25, atol=1e-6)  # meta + 0.25 * (clone - meta)
        assert a.grad is None


def test_maml_applies_clone_gradients_with_meta_adam():
    m = _fast(meta="maml", lr_g=0.01, g_steps=5)
    assert m.g_optimizer.param_groups[0]["lr"] == pytest.approx(0.05)  # lr_g * g_steps
    before = copy.deepcopy(m.generator)
    clone = copy.deepcopy(m.generator)
    for i, p in enumerate(clone.parameters()):
        p.grad = torch.full_like(p, 1.0 if i % 2 else -2.0)
    m.meta_update(clone)
    # Adam's first step moves every coordinate by lr * sign(grad)
    for i, (b, a) in enumerate(zip(before.parameters(), m.generator.parameters())):
        assert torch.allclose(a, b - 0.05 * (1.0 if i % 2 else -1.0), atol=1e-5)


def test_round_shapes_pool_meta_change_and_gradients():
    m, student = _fast(meta="reptile"), _student()
    before = [p.detach().clone() for p in m.generator.parameters()]
    batches = [m.refresh(step, student) for step in range(m.p["synth_every"] + 1)]
    assert sum(b is not None for b in batches) == 2 and len(m.pool) == 16  # steps 0 and synth_every
    batch = batches[0]
    assert tuple(batch.shape) == (8, 1, 8, 8) and not batch.requires_grad
    assert torch.equal(m.clip(batch), batch)  # inside the valid image range
    assert any(not torch.equal(b, p) for b, p in zip(before, m.generator.parameters()))
    assert all(p.grad is None for p in m.ctx.teacher.parameters())
    assert any(p.grad is not None for p in student.parameters())  # adv reached the raw student
    n_bn = sum(isinstance(x, nn.BatchNorm2d) for x in m.ctx.teacher.modules())
    assert len(m.bn_state) == n_bn and all(s is not None for s in m.bn_state)


def test_bn_momentum_state_carries_across_rounds():
    m, student = _fast(bn_mmt=0.9), _student()
    m.refresh(0, student)
    prev_mean = m.bn_state[0][0].clone()
    first_bn = next(x for x in m.ctx.teacher.modules() if isinstance(x, nn.BatchNorm2d))
    seen = []
    handle = first_bn.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].mean((0, 2, 3))))
    m.refresh(1 * m.p["synth_every"], student)
    handle.remove()
    # the stored state is the last forward's statistics blended with the previous round's
    expected = 0.1 * seen[-1] + 0.9 * prev_mean
    assert torch.allclose(m.bn_state[0][0], expected.detach(), atol=1e-5)


def test_warmup_fills_pool_without_student():
    m = _fast(warmup=2)
    m.prepare()
    assert len(m.pool) == 16 and m.rounds == 0 and m.bn_state is not None


@pytest.mark.parametrize("params, match", [
    ({"g_steps": 3}, "fast.g_steps"), ({"meta": "sgd"}, "fast.meta"), ({"meta": 1}, "fast.meta"),
    ({"lr_meta": 1.5}, "fast.lr_meta"), ({"bn_mmt": 1.0}, "fast.bn_mmt"),
    ({"synth_every": 0}, "fast.synth_every"), ({"lr_z": -1.0}, "fast.lr_z"), ({"nope": 1}, "unknown"),
])
def test_rejects_bad_params(params, match):
    with pytest.raises(InputError, match=match):
        _fast(**params)


@pytest.mark.parametrize("kdci", [False, True])
def test_end_to_end_on_digits(builtin, kdci):
    params = {"synth_batch": 32, "g_steps": 2, "synth_every": 5, "warmup": 1, "nz": 32, "ngf": 16,
              "meta": "maml" if kdci else "reptile"}
    result = run_inline(DistillConfig(method="fast", kdci=kdci, epochs=2, steps_per_epoch=5,
                                   batch_size=32, method_params=params))
    assert 0 <= result["student_accuracy"] <= 100 and len(result["history"]) == 2
    if kdci:  # generation kind: rebuilt from every new synthetic batch (steps 0 and 5)
        assert result["dictionary"]["rebuilds"] == 2 and result["dictionary"]["k"] <= 32
    else:
        assert "dictionary" not in result
