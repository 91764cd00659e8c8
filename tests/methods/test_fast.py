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
    assert cls.kind == "generation" and cls.default_k == 8 and cls.default_tau == 20.0
    assert cls.defaults["meta"] == "maml" and cls.student_defaults == {"lr": 0.2, "weight_decay": 1e-4}
    assert set(cls.sources) == set(cls.defaults)


def test_reptile_takes_a_meta_adam_step_on_scaled_difference():
    """Fast-Datafree's reptile_grad: grad = 67 (meta - clone), then one meta-Adam step."""
    m = _fast(meta="reptile", lr_g=0.01, g_steps=2)
    before = copy.deepcopy(m.generator)
    clone = copy.deepcopy(m.generator)
    with torch.no_grad():
        for i, p in enumerate(clone.parameters()):
            p.add_(1.0 if i % 2 else -1.0)
    m.meta_update(clone)
    # Adam's first step moves every coordinate by lr * sign(grad), lr = lr_g * g_steps = 0.02
    for i, (b, a) in enumerate(zip(before.parameters(), m.generator.parameters())):
        assert torch.allclose(a, b + 0.02 * (1.0 if i % 2 else -1.0), atol=1e-5)
        assert a.grad is None


def test_maml_sums_the_clone_gradients_of_every_inner_step():
    m = _fast(meta="maml", lr_g=0.01, g_steps=5)
    assert m.g_optimizer.param_groups[0]["lr"] == pytest.approx(0.05)  # lr_g * g_steps
    before = copy.deepcopy(m.generator)
    clone = copy.deepcopy(m.generator)
    for step_grad in (1.0, -3.0, 0.5):  # three inner steps: the meta-gradient is their sum, -1.5
        for p in clone.parameters():
            p.grad = torch.full_like(p, step_grad)
        m.accumulate_meta_gradient(clone)
    assert all(torch.allclose(p.grad, torch.full_like(p, -1.5)) for p in m.generator.parameters())
    m.meta_update(clone)
    for b, a in zip(before.parameters(), m.generator.parameters()):  # one Adam step: + lr
        assert torch.allclose(a, b + 0.05, atol=1e-5)


def test_one_round_of_maml_matches_the_summed_inner_gradients():
    """A whole round, checked against a replay: the meta-gradient is the sum over the g_steps
    inner steps of the clone's gradient at that step."""
    m, student = _fast(meta="maml", g_steps=2), _student()
    seen = []
    original = m.accumulate_meta_gradient

    def spy(fast_g):
        seen.append([p.grad.detach().clone() for p in fast_g.parameters()])
        original(fast_g)
    m.accumulate_meta_gradient = spy
    captured = {}
    m.meta_update = lambda fast_g: captured.update(grads=[p.grad.clone() for p in m.generator.parameters()])
    m.refresh(0, student)
    assert len(seen) == 2
    for total, a, b in zip(captured["grads"], *seen):
        assert torch.allclose(total, a + b, atol=1e-6)


def test_round_shapes_pool_meta_change_and_gradients():
    m, student = _fast(), _student()
    before = [p.detach().clone() for p in m.generator.parameters()]
    batches = [m.refresh(step, student) for step in range(m.params["synth_every"] + 1)]
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
    m.refresh(1 * m.params["synth_every"], student)
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
    ({"reptile_scale": -1.0}, "fast.reptile_scale"), ({"bn_mmt": 1.0}, "fast.bn_mmt"),
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
                                   batch_size=32, method_params=params)).to_json()
    assert 0 <= result["student_accuracy"] <= 100 and len(result["history"]) == 2
    if kdci:  # generation kind: rebuilt from every new synthetic batch (steps 0 and 5)
        assert result["dictionary"]["rebuilds"] == 2 and result["dictionary"]["k"] <= 8
    else:
        assert result["dictionary"] is None


def test_reset_l0_reinitialises_the_first_layers_once_at_its_round():
    m, student = _fast(reset_l0=2, nz=64, ngf=16), _student()
    m.refresh(0, student)  # round 1: no reset
    l1 = m.generator.l1.weight.detach().clone()
    m.refresh(m.params["synth_every"], student)  # round 2: reset before synthesising
    w = m.generator.l1.weight.detach()
    assert not torch.allclose(w, l1)
    # N(0, 0.02) then one meta step of lr_g * g_steps at most per coordinate
    assert w.std().item() == pytest.approx(0.02, rel=0.3) and m.generator.conv_blocks0.bias.abs().max() < 0.1
