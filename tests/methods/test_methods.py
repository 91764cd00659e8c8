"""Each method's own loss terms and data, on tiny tensors."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from kdci_core.data import DatasetInfo
from kdci_core.methods import METHODS, MethodContext
from kdci_core.methods.dfnd import NoiseAdaptation
from kdci_core.methods.losses import BNStatsHook, bn_loss, bn_statistics, kd_loss
from kdci_core.methods.wild import select_confident, self_cross_entropy
from kdci_core.models import build_model

INFO = DatasetInfo("tiny", 3, 1, 8, (0.5,), (0.25,), ("a", "b", "c"))


def test_kd_loss_matches_hand_formula():
    s, t, tau = torch.randn(5, 3), torch.randn(5, 3), 4.0
    p_t = F.softmax(t / tau, 1)
    hand = (p_t * (p_t.log() - F.log_softmax(s / tau, 1))).sum(1).mean() * tau ** 2
    assert torch.allclose(kd_loss(s, t, tau), hand, atol=1e-6)
    assert kd_loss(t, t, tau).abs() < 1e-6


def test_bn_hook_distance_by_hand():
    bn = nn.BatchNorm2d(2).eval()
    bn.running_mean.copy_(torch.tensor([1.0, -1.0]))
    bn.running_var.copy_(torch.tensor([4.0, 1.0]))
    x = torch.randn(64, 2, 4, 4)
    hook = BNStatsHook(bn)
    bn(x)
    mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
    hand = torch.norm(mean - bn.running_mean) + torch.norm(var - bn.running_var)
    assert torch.allclose(hook.loss, hand, atol=1e-5)
    hook.remove()


def test_bn_statistics_hooks_every_bn_and_cleans_up():
    model = build_model("lenet5", num_classes=3, in_channels=1).eval()
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    with bn_statistics(model) as hooks:
        assert len(hooks) == n_bn
        model(torch.randn(4, 1, 8, 8))
        assert bn_loss(hooks) > 0
    assert all(not m._forward_hooks for m in model.modules())


def test_noise_adaptation_fixed_diagonal_learned_off_diagonal():
    """DFND-train.py's matrix: row i = [softmax(w_i)[:i] (1-d), d, softmax(w_i)[i:] (1-d)]."""
    na = NoiseAdaptation(3, diagonal=0.9)
    q = na.matrix()
    assert torch.allclose(q.sum(1), torch.ones(3), atol=1e-6)
    assert torch.allclose(torch.diagonal(q), torch.full((3,), 0.9))
    assert torch.allclose(q[~torch.eye(3, dtype=torch.bool)], torch.full((6,), 0.05))  # zero init: uniform
    with torch.no_grad():
        na.off[1] = torch.tensor([0.0, math.log(3.0)])  # row 1: off-diagonal shares 1/4, 3/4
    q = na.matrix()
    assert torch.allclose(q[1], torch.tensor([0.025, 0.9, 0.075]), atol=1e-6)
    p = F.softmax(torch.randn(6, 3), 1)
    assert torch.allclose(na(p), p @ q, atol=1e-6)
    na(p).sum().backward()
    assert na.off.grad is not None and [n for n, _ in na.named_parameters()] == ["off"]


def test_select_confident_picks_lowest_self_ce():
    logits = torch.tensor([[5.0, 0, 0], [0.1, 0, 0], [0, 9.0, 0], [0, 0, 0.2], [0, 0, 7.0]])
    assert set(select_confident(logits, 2).tolist()) == {2, 4}
    assert torch.all(self_cross_entropy(logits[[2, 4]]) < self_cross_entropy(logits[[1, 3]]).min())
    balanced = select_confident(logits, 3, balanced=True)
    assert sorted(logits[balanced].argmax(1).tolist()) == [0, 1, 2]


def _ctx(teacher, **params):
    return MethodContext(teacher=teacher, info=INFO, device=torch.device("cpu"), seed=0, tau=4.0,
                         params=params)


def test_deepinv_synthesis_shapes_range_and_pool():
    teacher = build_model("lenet5", num_classes=3, in_channels=1).eval()
    student = build_model("lenet5_half", num_classes=3, in_channels=1).eval()
    m = METHODS.get("deepinv")(_ctx(teacher, g_steps=3, synth_batch=8, synth_every=2))
    assert m.refresh(1, student) is None
    batch = m.refresh(0, student)
    assert batch.shape == (8, 1, 8, 8) and not batch.requires_grad
    lo, hi = (0 - 0.5) / 0.25, (1 - 0.5) / 0.25
    assert batch.min() >= lo - 1e-5 and batch.max() <= hi + 1e-5
    assert len(m.pool) == 8 and m.sample(5).shape == (5, 1, 8, 8)


def test_deepinv_rejects_bad_params():
    from kdci_core.errors import InputError

    teacher = build_model("lenet5", num_classes=3, in_channels=1).eval()
    with pytest.raises(InputError, match="deepinv.lr_g"):
        METHODS.get("deepinv")(_ctx(teacher, lr_g=-1.0))
    with pytest.raises(InputError, match="unknown"):
        METHODS.get("deepinv")(_ctx(teacher, nope=1))


def test_dfnd_selects_from_default_pool_and_adds_noise_term():
    teacher = build_model("lenet5", num_classes=3, in_channels=1).eval()
    ctx = _ctx(teacher, pool_size=100, n_select=30)
    ctx.teacher_accuracy = 80.0  # the diagonal of Q, when noise_diag is left at 0 (the teacher's)
    m = METHODS.get("dfnd")(ctx)
    m.prepare()
    assert m.substitution_data().shape == (30, 1, 8, 8)
    s_hat, t = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3)
    terms = m.student_losses(None, s_hat, t)
    terms["noise"].backward()
    assert s_hat.grad is not None and m.noise.off.grad is not None
    assert m.noise.diagonal.item() == pytest.approx(0.8)
    # Q trains with its own Adam (DFND-train.py: lr 1e-3, no weight decay), not the student's SGD
    assert m.student_modules() == [] and m.student_optimizers() == [m.noise_optimizer]
    group = m.noise_optimizer.param_groups[0]
    assert type(m.noise_optimizer).__name__ == "Adam" and group["lr"] == 1e-3 and group["weight_decay"] == 0


def test_method_registry_and_defaults():
    assert {"deepinv", "dfnd"} <= set(METHODS.names())
    assert METHODS.get("deepinv").default_k == 32 and METHODS.get("dfnd").default_k == 128
    assert METHODS.get("deepinv").kind == "generation" and METHODS.get("dfnd").kind == "sampling"
    # each method declares its own K: KDCI's section 4.3 (8 for a GAN mini-batch, DAFL and Fast;
    # 32 for model inversion; 128 for sampled data)
    assert {m: METHODS.get(m).default_k for m in METHODS.names()} == {
        "dafl": 8, "deepinv": 32, "cmi": 32, "fast": 8, "dfnd": 128, "mosaickd": 128, "plain": 128}


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_is_named_by_the_registry_and_complete(name):
    cls = METHODS.get(name)
    assert cls.name == name and cls.kind in ("generation", "sampling")
    assert cls.default_k >= 1 and cls.default_tau > 0
    assert set(cls.sources) <= set(cls.defaults)  # every documented source names a real parameter


def test_methods_doc_table_is_current():
    from kdci_core.cli.methods import methods_table
    from tests.helpers import REPO

    doc = (REPO / "docs" / "METHODS.md").read_text()
    assert methods_table(markdown=True) in doc, "regenerate with: python -m kdci_core methods --markdown"
    assert all(f"`{name}`" in doc for name in METHODS.names())


def test_information_entropy_loss_minimal_when_balanced():
    from kdci_core.methods.losses import information_entropy_loss

    balanced = torch.zeros(6, 3)  # uniform predictions: sum p log p = -log 3, the minimum
    skewed = torch.tensor([[20.0, 0.0, 0.0]] * 6)  # one class: 0
    assert information_entropy_loss(balanced).item() == pytest.approx(-math.log(3), abs=1e-5)
    assert information_entropy_loss(balanced, base=10).item() == pytest.approx(-math.log10(3), abs=1e-5)
    assert information_entropy_loss(skewed).abs() < 1e-4


def test_activation_loss_is_minus_mean_abs():
    from kdci_core.methods.losses import activation_loss

    f = torch.tensor([[1.0, -3.0], [2.0, 0.0]])
    assert activation_loss(f).item() == pytest.approx(-1.5)


def test_bn_momentum_blends_with_previous_statistics():
    bn = nn.BatchNorm2d(1).eval()
    with bn_statistics(bn, momentum=0.5) as hooks:
        bn(torch.full((2, 1, 2, 2), 2.0))  # mean 2, var 0
        hooks[0].update_momentum()
        bn(torch.full((2, 1, 2, 2), 4.0))  # blended mean 0.5*4 + 0.5*2 = 3
        mean, var = hooks[0].stats
        hooks[0].update_momentum()
    assert mean.item() == pytest.approx(3.0) and var.item() == pytest.approx(0.0)
    # the state carries into a later block
    with bn_statistics(bn, momentum=0.5, previous=[hooks[0].previous]) as again:
        bn(torch.zeros(2, 1, 2, 2))
        assert again[0].stats[0].item() == pytest.approx(1.5)  # 0.5*0 + 0.5*3


def test_teacher_objectives_weights_and_terms():
    from kdci_core.methods.synthesis import teacher_objectives
    from kdci_core.teachers import freeze

    teacher = freeze(build_model("lenet5", num_classes=3, in_channels=1))
    student = build_model("lenet5_half", num_classes=3, in_channels=1).eval()
    x = torch.randn(6, 1, 8, 8, requires_grad=True)
    targets = torch.tensor([0, 1, 2, 0, 1, 2])
    with bn_statistics(teacher) as hooks:
        total, terms, t = teacher_objectives(
            teacher, x, weights={"bn": 2.0, "oh": 1.0, "adv": 0.5, "balance": 3.0, "act": 0.1,
                                 "tv": 0.0, "lr_g": 99.0}, hooks=hooks, targets=targets,
            student=student, adv="clamped-js")
    assert set(terms) == {"bn", "oh", "adv", "balance", "act"}  # zero weights and non-terms ignored
    assert terms["oh"].item() == pytest.approx(F.cross_entropy(t, targets).item(), rel=1e-5)
    assert terms["adv"] <= 0 and terms["bn"] > 0
    assert total.item() == pytest.approx(sum(v.item() for v in terms.values()), rel=1e-5)
    total.backward()
    assert x.grad is not None and all(p.grad is None for p in teacher.parameters())
