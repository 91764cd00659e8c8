"""CMI: the contrastive loss by hand, the views, the memory bank, re-initialised generators,
end-to-end distillation on digits (KDCI on and off) and bad hyperparameters."""

import math

import pytest
import torch

from kdci_core.data import DatasetInfo
from kdci_core.distill import DistillConfig, Distiller
from kdci_core.errors import InputError
from kdci_core.methods import METHODS, MethodContext
from kdci_core.methods.cmi import crop_boxes, info_nce, random_view
from kdci_core.methods.losses import bn_statistics
from kdci_core.models import build_model
from kdci_core.runs import run_inline

INFO = DatasetInfo("tiny", 3, 1, 8, (0.5,), (0.25,), ("a", "b", "c"))
TINY = {"g_steps": 2, "synth_every": 5, "synth_batch": 32}


def _teacher():
    torch.manual_seed(0)
    teacher = build_model("lenet5", num_classes=3, in_channels=1).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def _bn_dim(model) -> int:
    """The width of CMI's features: the channels of every teacher BatchNorm, concatenated."""
    return sum(m.num_features for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


def _method(**params):
    ctx = MethodContext(teacher=_teacher(), info=INFO, device=torch.device("cpu"), seed=0, tau=20.0,
                        params=params)
    return METHODS.get("cmi")(ctx)


def test_info_nce_by_hand():
    t = 0.1
    eye = torch.eye(4)
    # identical views, orthogonal negatives: CE = log(1 + 3 e^{-1/t}) ~ 1.4e-4, near its infimum 0
    best = info_nce(eye, eye, t, 4)
    assert best.item() == pytest.approx(math.log(1 + 3 * math.exp(-10)), abs=1e-6)
    # positives swapped: each anchor scores 0 on its positive and 1/t on a negative
    swapped = info_nce(eye, eye.roll(1, 0), t, 4)
    assert swapped.item() == pytest.approx(math.log(math.exp(10) + 3), rel=1e-5)
    # bank rows are averaged apart from batch rows, then added: 2 x the per-row CE at t=1
    two = torch.eye(2)
    row = math.log(1 + math.exp(-1))
    assert info_nce(two, two, 1.0, 2).item() == pytest.approx(row, rel=1e-5)
    assert info_nce(two, two, 1.0, 1).item() == pytest.approx(2 * row, rel=1e-5)


def test_random_view_identity_and_flip():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 1, 8, 8)
    assert torch.allclose(random_view(x, gen), x, atol=1e-5)
    flipped = random_view(x, gen, flip=True)
    for a, b in zip(flipped, x):
        assert torch.allclose(a, b, atol=1e-5) or torch.allclose(a, b.flip(2), atol=1e-5)
    local = random_view(x, gen, scale=(0.25, 1.0))
    assert local.shape == x.shape and not torch.allclose(local, x)


def test_the_local_view_samples_crops_as_kornia_does():
    """DataFree's CMI takes its local view with kornia's RandomResizedCrop(scale=[0.25, 1]): our
    boxes follow its sampling (the mean cropped area, about 0.63 of a 32 px image, and its spread),
    and a box's pixels are what the view shows."""
    gen = torch.Generator().manual_seed(0)
    x0, y0, w, h = crop_boxes(20_000, 32, 32, gen, scale=(0.25, 1.0))
    area = w * h / 1024
    assert (x0 >= 0).all() and (x0 + w <= 32).all() and (y0 + h <= 32).all()
    kornia = pytest.importorskip("kornia")
    torch.manual_seed(0)
    params = kornia.augmentation.RandomResizedCrop((32, 32), scale=(0.25, 1.0)).forward_parameters(
        torch.Size([20_000, 3, 32, 32]))
    src = params["src"]
    kw = src[:, 1, 0] - src[:, 0, 0] + 1
    kh = src[:, 2, 1] - src[:, 1, 1] + 1
    k_area = kw * kh / 1024
    assert abs(float(area.mean()) - float(k_area.mean())) < 0.01
    assert abs(float(area.std()) - float(k_area.std())) < 0.01
    # the view of a box is that box's pixels, resized (an integer ramp shows it exactly)
    ramp = torch.arange(32.0).repeat(32, 1)[None, None]
    one = torch.Generator().manual_seed(3)
    bx0, _, bw, _ = crop_boxes(1, 32, 32, torch.Generator().manual_seed(3), scale=(0.25, 1.0))
    view = random_view(ramp, one, scale=(0.25, 1.0))
    assert view[0, 0, 0, 0].item() == pytest.approx(bx0.item(), abs=1e-4)
    assert view[0, 0, 0, -1].item() == pytest.approx((bx0 + bw - 1).item(), abs=1e-4)


def test_contrastive_gradients_reach_local_view_and_head_only():
    m = _method()
    d = _bn_dim(m.ctx.teacher)
    m.remember(torch.randn(10, 2 * d))
    f_global = torch.randn(5, d, requires_grad=True)
    f_local = (f_global.detach() + 0.1 * torch.randn(5, d)).requires_grad_(True)
    loss = m.contrastive(f_global, f_local)
    loss.backward()
    assert loss > 0 and f_local.grad.abs().sum() > 0
    assert f_global.grad is None  # positives are detached (DataFree's CMI)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.head.parameters())


def test_objective_terms_and_gradients_reach_generator_not_teacher():
    m = _method(synth_batch=8)
    student = build_model("lenet5_half", num_classes=3, in_channels=1).eval()
    g = m.new_generator()
    z = m.latent(8).requires_grad_(True)
    with bn_statistics(m.ctx.teacher, instance_means=True) as hooks:
        total, terms, feats = m.objective(g(z), m.targets(8), hooks, student)
    assert set(terms) == {"bn", "oh", "adv", "cr"} and terms["adv"] <= 0
    assert torch.allclose(total, sum(terms.values()))
    assert feats.shape == (8, 2 * _bn_dim(m.ctx.teacher)) and not feats.requires_grad
    terms["cr"].backward()
    assert z.grad.abs().sum() > 0 and all(p.grad is not None for p in m.head.parameters())
    assert sum(p.grad.abs().sum() for p in g.parameters() if p.grad is not None) > 0
    assert all(p.grad is None for p in m.ctx.teacher.parameters())
    assert all(p.grad is None for p in student.parameters())  # cr does not involve the student


def test_rounds_reinitialise_generator_fill_bank_and_pool():
    m = _method(g_steps=2, synth_batch=8, synth_every=2, bank_size=12)
    student = build_model("lenet5_half", num_classes=3, in_channels=1).eval()
    assert m.refresh(1, student) is None
    first = m.refresh(0, student)
    g1, w1 = m.generator, m.generator.l1.weight.detach().clone()
    second = m.refresh(2, student)
    # the same generator, re-initialised (DataFree's reset_model), then trained again
    assert m.generator is g1 and not torch.equal(m.generator.l1.weight, w1)
    assert first.shape == (8, 1, 8, 8) and not first.requires_grad and not torch.equal(first, second)
    lo, hi = (0 - 0.5) / 0.25, (1 - 0.5) / 0.25
    assert first.min() >= lo - 1e-5 and first.max() <= hi + 1e-5
    assert len(m.pool) == 16 and m.sample(5).shape == (5, 1, 8, 8)
    d = _bn_dim(m.ctx.teacher)
    assert m.bank.shape == (12, 2 * d) and not m.bank.requires_grad  # FIFO: oldest 4 dropped
    m.params["n_neg"] = 3
    assert m.negatives().shape == (3, 2 * d)


def test_reset_generator_draws_the_references_initialisation():
    from kdci_core.methods.synthesis import reset_generator

    m = _method(ngf=32, nz=64)
    reset_generator(m.generator, torch.Generator().manual_seed(3))
    convs = [x for x in m.generator.modules() if isinstance(x, (torch.nn.Conv2d, torch.nn.Linear))]
    bns = [x for x in m.generator.modules() if isinstance(x, torch.nn.BatchNorm2d) and x.affine]
    w = torch.cat([c.weight.flatten() for c in convs])
    assert w.mean().abs() < 0.002 and w.std().item() == pytest.approx(0.02, rel=0.05)
    assert all(c.bias is None or not c.bias.any() for c in convs)
    bw = torch.cat([b.weight for b in bns])
    assert (bw - 1).abs().max() < 0.1 and bw.std().item() == pytest.approx(0.02, rel=0.3)
    assert all(not b.bias.any() for b in bns)


def test_synthesis_reproducible_from_seed():
    student = build_model("lenet5_half", num_classes=3, in_channels=1).eval()
    batches = []
    for _ in range(2):
        torch.manual_seed(1)
        batches.append(_method(g_steps=2, synth_batch=4).refresh(0, student))
    assert torch.equal(*batches)


def _cfg(kdci):
    return DistillConfig(teacher="builtin", student="lenet5_half", dataset="digits", method="cmi",
                         kdci=kdci, epochs=2, steps_per_epoch=5, batch_size=32, method_params=TINY)


@pytest.mark.parametrize("kdci", [False, True])
def test_distill_digits_end_to_end(builtin, kdci):
    res = run_inline(_cfg(kdci)).to_json()
    assert 0 <= res["student_accuracy"] <= 100 and res["tau"] == 20.0
    assert [h["step"] for h in res["history"]] == [5, 10]
    if kdci:  # generation kind: rebuilt from every synthetic batch (steps 0 and 5)
        assert res["k"] == 32 and res["dictionary"]["rebuilds"] == 2
        assert abs(sum(res["dictionary"]["proportions"]) - 1) < 1e-5
    else:
        assert res["dictionary"] is None and res["k"] is None


def test_dictionary_built_from_each_returned_batch(builtin):
    d = Distiller(_cfg(True))
    seen, rebuild = [], d.rebuild_dictionary
    d.rebuild_dictionary = lambda data: (seen.append(data), rebuild(data))
    d.fit()
    assert [len(s) for s in seen] == [32, 32]
    assert torch.equal(torch.cat(seen), d.method.pool.data) and len(d.method.bank) == 64


@pytest.mark.parametrize("bad", [{"cr_t": 0.0}, {"crop_scale": 0.0}, {"crop_scale": 1.5},
                                 {"synth_every": 0}, {"synth_batch": 1}, {"lr_g": -1.0},
                                 {"g_steps": 2.5}, {"nope": 1}])
def test_rejects_bad_params(bad):
    with pytest.raises(InputError):
        _method(**bad)
