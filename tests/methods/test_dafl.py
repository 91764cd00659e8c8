"""DAFL: its generator objective on tiny tensors, the alternating generator/student schedule,
the newest-batch-only sampling, end-to-end runs on digits (KDCI on/off) and bad parameters."""

import math

import pytest
import torch
import torch.nn.functional as F

from kdci_core.data import DatasetInfo
from kdci_core.distill import DistillConfig
from kdci_core.errors import InputError
from kdci_core.methods import METHODS, MethodContext
from kdci_core.models import build_model
from kdci_core.runs import run_inline

INFO = DatasetInfo("tiny", 3, 1, 8, (0.5,), (0.25,), ("a", "b", "c"))
TINY = {"synth_batch": 16, "nz": 8, "ngf": 8}


def _frozen(name):
    model = build_model(name, num_classes=3, in_channels=1).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _method(teacher=None, **params):
    ctx = MethodContext(teacher=teacher or _frozen("lenet5"), info=INFO, device=torch.device("cpu"),
                        seed=0, tau=4.0, params={**TINY, **params})
    return METHODS.get("dafl")(ctx)


def test_registered_with_kdci_defaults():
    cls = METHODS.get("dafl")
    assert cls.kind == "generation" and cls.default_k == 8
    assert set(cls.sources) == set(cls.defaults)
    assert (cls.defaults["oh"], cls.defaults["act"], cls.defaults["balance"]) == (1.0, 0.1, 5.0)


def test_generator_loss_terms_match_hand_formulas():
    m = _method(oh=1.0, act=0.1, balance=5.0)
    m.generator.eval()  # deterministic forward for the comparison
    z = m.latent(16)
    total, terms, t, images = m.generator_loss(z)
    assert torch.allclose(images, m.generator(z))
    assert set(terms) == {"oh", "act", "balance"}
    logits, feats = m.ctx.teacher(m.generator(z), return_features=True)
    assert torch.allclose(t, logits)
    p = F.softmax(logits, 1).mean(0)
    assert terms["oh"].item() == pytest.approx(F.cross_entropy(logits, logits.argmax(1)).item(), rel=1e-5)
    assert terms["act"].item() == pytest.approx(-0.1 * feats.abs().mean().item(), rel=1e-5)
    # DAFL-train.py: (softmax_o_T * torch.log10(softmax_o_T)).sum(), weighted by --ie
    assert terms["balance"].item() == pytest.approx(5.0 * (p * torch.log10(p)).sum().item(),
                                                    rel=1e-4, abs=1e-6)
    assert terms["act"] <= 0 and terms["oh"] >= 0 and terms["balance"] >= 5.0 * -math.log10(3) - 1e-6
    assert total.item() == pytest.approx(sum(v.item() for v in terms.values()), rel=1e-5)


def test_balance_term_minimal_when_balanced_zero_when_collapsed():
    from kdci_core.methods.synthesis import teacher_objectives

    class Fixed(torch.nn.Module):  # a "teacher" that returns the given logits
        def forward(self, x, return_features=False):
            return x

    balanced = torch.eye(3) * 50.0                      # one confident sample per class
    collapsed = torch.tensor([[50.0, 0, 0]] * 3)        # every sample in class 0
    w = {"balance": 5.0}
    assert teacher_objectives(Fixed(), balanced, weights=w, balance_base=10.0)[1]["balance"].item() == \
        pytest.approx(-5.0 * math.log10(3), rel=1e-4)
    assert teacher_objectives(Fixed(), collapsed, weights=w, balance_base=10.0)[1]["balance"].abs() < 1e-4


def test_generator_is_dafls_tanh_then_batchnorm_without_affine():
    m = _method()
    g = m.generator
    assert g.output == "tanh-bn" and not g.out_norm.affine
    assert g.conv_blocks1[0].bias is not None and g.conv_blocks1[1].eps == 0.8
    # DAFL-train.py's Adam for G: lr_G and Adam's default betas (not DataFree's 0.5)
    assert m.g_optimizer.param_groups[0]["betas"] == (0.9, 0.999)


def test_synthesis_takes_its_steps_through_generator_loss(monkeypatch):
    """The generator's objective is the one generator_loss computes: the loop's synthesis calls it."""
    m = _method(g_steps=2)
    calls = []
    original = m.generator_loss
    monkeypatch.setattr(m, "generator_loss", lambda z: calls.append(len(z)) or original(z))
    m.synthesize(None)
    assert calls == [m.params["synth_batch"]] * 2


def test_gradients_reach_the_generator_only():
    teacher, student = _frozen("lenet5"), _frozen("lenet5_half")
    for p in student.parameters():
        p.requires_grad_(True)
    m = _method(teacher, g_steps=1)
    before = [p.detach().clone() for p in m.generator.parameters()]
    loss, _, _, _ = m.generator_loss(m.latent(16))
    loss.backward()
    assert all(p.grad is not None for p in m.generator.parameters() if p.requires_grad)
    assert all(p.grad is None for p in list(teacher.parameters()) + list(student.parameters()))
    m.g_optimizer.zero_grad(set_to_none=True)
    m.generator.eval()  # to recompute the step's batch exactly below
    m.generator.train = lambda mode=True: m.generator  # keep eval mode inside refresh
    state = m.rng.get_state()
    batch = m.refresh(0, student)  # one Adam step; the student gets the batch of that step
    assert not batch.requires_grad and batch.shape == (16, 1, 8, 8)
    m.rng.set_state(state)
    with torch.no_grad():
        replay = [p.detach().clone() for p in m.generator.parameters()]
        for p, b in zip(m.generator.parameters(), before):
            p.copy_(b)
        assert torch.allclose(batch, m.generator(m.latent(16)), atol=1e-6)  # G before its update
        for p, r in zip(m.generator.parameters(), replay):
            p.copy_(r)
    assert any(not torch.equal(a, b) for a, b in zip(before, m.generator.parameters()))
    assert all(p.grad is None for p in student.parameters())  # DAFL's G ignores the student


def test_alternating_schedule_and_newest_batch_only():
    m = _method(synth_every=2, g_steps=3)
    student = _frozen("lenet5_half")
    first = m.refresh(0, student)
    assert m.refresh(1, student) is None
    assert m.g_optimizer.state[next(m.generator.parameters())]["step"] == 3
    x = m.sample(16)  # the whole newest batch, shuffled, no repeats
    assert sorted(x.flatten(1).sum(1).tolist()) == pytest.approx(sorted(first.flatten(1).sum(1).tolist()))
    second = m.refresh(2, student)
    assert m.rounds == 2 and len(m.pool) == 16 and torch.equal(m.substitution_data(), second)
    rows = {tuple(r.tolist()) for r in second.flatten(1)}
    assert all(tuple(r.tolist()) in rows for r in m.sample(40).flatten(1))  # larger: with replacement


@pytest.mark.parametrize("bad", [{"synth_every": 0}, {"synth_batch": 1}, {"lr_g": 0.0}, {"nz": 0},
                                 {"ngf": 0}, {"balance": -1.0}, {"g_steps": 1.5}, {"pool_size": 10},
                                 {"oh": "x"}])
def test_bad_parameters_raise_input_error(bad):
    with pytest.raises(InputError, match="dafl|unknown"):
        _method(**bad)


@pytest.mark.parametrize("kdci", [False, True])
def test_distill_digits_end_to_end(builtin, kdci):
    cfg = DistillConfig(method="dafl", kdci=kdci, epochs=2, steps_per_epoch=5, batch_size=32,
                        method_params={"synth_batch": 32, "synth_every": 2, "ngf": 16, "nz": 16})
    res = run_inline(cfg).to_json()
    assert 0 <= res["student_accuracy"] <= 100 and res["tau"] == 1.0  # DAFL's kdloss: no temperature
    assert [h["step"] for h in res["history"]] == [5, 10]
    assert all(set(h) >= {"kd", "loss"} and h["loss"] == pytest.approx(h["kd"]) for h in res["history"])
    if kdci:  # generation kind: the dictionary is rebuilt from every new synthetic mini-batch
        assert res["k"] == 8 and res["dictionary"]["rebuilds"] == 5
        assert abs(sum(res["dictionary"]["proportions"]) - 1) < 1e-5
    else:
        assert res["dictionary"] is None and res["k"] is None


def test_k_above_synth_batch_rejected(builtin):
    cfg = DistillConfig(method="dafl", kdci=True, k=20, epochs=1, steps_per_epoch=1,
                        method_params={"synth_batch": 16})
    with pytest.raises(InputError, match="synth_batch"):
        run_inline(cfg)
