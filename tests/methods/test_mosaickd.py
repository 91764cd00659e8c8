"""MosaicKD: patch discriminator and its BCE, the generator terms, refresh/sample, the OOD
selection, the loop on digits with KDCI on and off, and bad hyperparameters."""

import math

import pytest
import torch

from kdci_core.data import load_dataset, load_wild_pool
from kdci_core.distill import DistillConfig
from kdci_core.errors import InputError
from kdci_core.methods import METHODS, MethodContext
from kdci_core.methods.mosaickd import PatchDiscriminator, patch_bce
from kdci_core.methods.wild import entropy, score_pool
from kdci_core.models import build_model
from kdci_core.runs import run_inline

SMALL = {"pool_size": 200, "n_select": 40, "synth_batch": 8, "g_steps": 1, "synth_every": 3,
         "ngf": 8, "ndf": 8}


@pytest.fixture(scope="module")
def info():
    return load_dataset("digits").info


def _method(builtin, info, **params):
    ctx = MethodContext(teacher=builtin.model, info=info, device=torch.device("cpu"), seed=0,
                        tau=4.0, params={**SMALL, **params})
    return METHODS.get("mosaickd")(ctx)


def _student():
    return build_model("lenet5_half", num_classes=10, in_channels=1).eval()


def test_registration_kind_and_defaults():
    cls = METHODS.get("mosaickd")
    assert cls.kind == "sampling" and cls.default_k == 128
    assert set(cls.sources) == set(cls.defaults)
    assert cls.defaults["local"] == 1.0 and cls.defaults["balance"] == 10.0


def test_patch_bce_by_hand():
    zeros = torch.zeros(2, 1, 3, 3)  # 9 patches an image, each BCE = ln 2, summed per image
    assert patch_bce(zeros, True).item() == pytest.approx(9 * math.log(2), rel=1e-6)
    assert patch_bce(zeros, False).item() == pytest.approx(9 * math.log(2), rel=1e-6)
    sure_real = torch.full((2, 1, 3, 3), 20.0)
    assert patch_bce(sure_real, True) < 1e-6 and patch_bce(sure_real, False) > 100


def test_patch_discriminator_is_the_references_patchgan():
    """kd_mosaic.py's PatchDiscriminator: 4x4 stride-2 convs twice, a 1x1 to one logit per patch:
    8 x 8 logits on a 32 px image, each seeing a 10 x 10 px window (4 px apart)."""
    d = PatchDiscriminator(nc=3, ndf=8).eval()
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size, c.stride, c.padding) for c in convs] == [((4, 4), (2, 2), (1, 1))] * 2 + [
        ((1, 1), (1, 1), (0, 0))]
    x = torch.randn(2, 3, 32, 32)
    out = d(x)
    assert out.shape == (2, 1, 8, 8)
    y = x.clone()
    y[:, :, 0, 0] += 5.0  # the corner pixel: only logits whose 10 px window (padding 3) holds it
    changed = ((d(y) - out).abs() > 1e-6)[0, 0]
    assert changed[0, 0] and changed.nonzero().max() <= 1
    assert d(torch.randn(2, 1, 8, 8).repeat(1, 3, 1, 1)).shape == (2, 1, 2, 2)  # 8 px digits


def test_discriminator_loss_trains_only_the_discriminator(builtin, info):
    m = _method(builtin, info)
    fake = m.generate(8)
    loss = m.discriminator_loss(torch.randn(8, 1, 8, 8), fake)
    assert loss.item() > 0
    half = _method(builtin, info, local=0.5).discriminator_loss(torch.randn(8, 1, 8, 8), fake)
    assert half.item() < loss.item()  # the reference scales D's loss by --local too
    loss.backward()
    assert all(q.grad is not None for q in m.discriminator.parameters())
    assert all(q.grad is None for q in m.generator.parameters())


def test_generator_terms_signs_and_gradients(builtin, info):
    m = _method(builtin, info)
    student = _student()
    fake = m.generate(8)
    lo, hi = -info.mean[0] / info.std[0], (1 - info.mean[0]) / info.std[0]
    assert fake.shape == (8, 1, 8, 8) and fake.min() >= lo - 1e-5 and fake.max() <= hi + 1e-5
    terms = m.generator_terms(fake, student)
    assert set(terms) == {"local", "align", "balance", "adv"}
    t = builtin.model(fake)
    logp = torch.log_softmax(t, 1)
    assert terms["align"].item() == pytest.approx(-(logp.exp() * logp).sum(1).mean().item(), rel=1e-4)
    py = torch.softmax(t, 1).mean(0)
    assert terms["balance"].item() == pytest.approx(10.0 * (py * torch.log2(py)).sum().item(), rel=1e-4)
    s_out = student(fake)
    kl = (torch.softmax(t, 1) * (torch.log_softmax(t, 1) - torch.log_softmax(s_out, 1))).sum(1).mean()
    assert terms["adv"].item() == pytest.approx(-kl.item(), rel=1e-3)  # - KL(t || s) at T=1, unmasked
    assert terms["local"] > 0 and terms["align"] > 0 and terms["balance"] <= 0 and terms["adv"] <= 0
    sum(terms.values()).backward()
    assert all(q.grad is not None for q in m.generator.parameters())
    assert all(q.grad is None for q in builtin.model.parameters())  # the teacher stays frozen
    no_local = _method(builtin, info, local=0.0).generator_terms(fake.detach(), student)
    assert "local" not in no_local


def test_prepare_keeps_the_least_confident(builtin, info):
    m = _method(builtin, info)
    m.prepare()
    assert m.substitution_data().shape == (40, 1, 8, 8) and m.min_dictionary_samples() == 40
    pool = load_wild_pool(None, info, n=200, seed=0)
    scores = entropy(score_pool(builtin.model, pool, device=torch.device("cpu")))
    kept = entropy(builtin.model(m.selected))  # MosaicKD's score: the teacher's entropy, highest kept
    assert kept.min() >= scores.sort(descending=True).values[39] - 1e-5


def test_refresh_trains_both_nets_and_every_sample_is_fresh(builtin, info):
    m = _method(builtin, info, g_steps=1)
    m.prepare()
    g0 = [q.clone() for q in m.generator.parameters()]
    d0 = [q.clone() for q in m.discriminator.parameters()]
    student = _student()
    assert m.refresh(1, student) is None  # not a refresh step
    assert all(torch.equal(a, b) for a, b in zip(g0, m.generator.parameters()))
    assert m.refresh(0, student) is None and m.rounds == 1
    assert student.training  # the reference's G step runs the student in train mode
    assert any(not torch.equal(a, b) for a, b in zip(g0, m.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, m.discriminator.parameters()))
    assert {"local", "align", "balance", "adv"} == set(m.last_terms)
    first, second = m.sample(10), m.sample(10)
    assert first.shape == (10, 1, 8, 8)
    assert not torch.equal(first[:5], second[:5])  # fresh generator images at every student step
    assert all((m.selected == img).all((1, 2, 3)).any() for img in first[5:])  # OOD, unaugmented here


def test_local_zero_leaves_the_discriminator_untouched(builtin, info):
    m = _method(builtin, info, local=0.0, g_steps=1)
    m.prepare()
    d0 = [q.clone() for q in m.discriminator.parameters()]
    m.refresh(0, _student())
    assert all(torch.equal(a, b) for a, b in zip(d0, m.discriminator.parameters()))


@pytest.mark.parametrize("kdci", [True, False])
def test_distill_digits_end_to_end(builtin, kdci):
    cfg = DistillConfig(method="mosaickd", kdci=kdci, epochs=2, steps_per_epoch=5, batch_size=32,
                        method_params={**SMALL, "n_select": 150, "synth_every": 5})
    res = run_inline(cfg).to_json()
    assert 0 <= res["student_accuracy"] <= 100 and res["tau"] == 1.0  # kd_mosaic.py --T 1
    assert [h["step"] for h in res["history"]] == [5, 10]
    if kdci:  # sampling method: built once from the 150 selected images, never rebuilt
        assert res["dictionary"]["rebuilds"] == 1 and res["k"] == 128
        assert 1 <= res["dictionary"]["k"] <= 128
        assert sum(res["dictionary"]["proportions"]) == pytest.approx(1.0, abs=1e-5)
    else:
        assert res["dictionary"] is None and res["k"] is None


@pytest.mark.parametrize("params, match", [
    ({"ndf": 0}, "mosaickd.ndf"), ({"n_select": 500}, "mosaickd.n_select"), ({"synth_batch": 1}, "mosaickd.synth_batch"),
    ({"synth_every": 0}, "mosaickd.synth_every"), ({"lr_g": -1.0}, "mosaickd.lr_g"),
    ({"local": "x"}, "mosaickd.local"), ({"nope": 1}, "unknown"),
])
def test_bad_params_raise_input_error(builtin, info, params, match):
    with pytest.raises(InputError, match=match):
        _method(builtin, info, **params)


def test_the_generator_is_mosaickds_own_four_ngf_wide(builtin, info):
    """MosaicKD's engine/models/generator.py: the first stage 4 x ngf wide (DataFree's is 2 x):
    2.03M parameters at nz 100, ngf 64, 32 px, against DataFree's 1.05M."""
    from kdci_core.models import build_generator

    m = _method(builtin, info)
    assert m.generator.stem == 4 and m.generator.l1.out_features == 4 * 8 * m.generator.init_size ** 2
    sizes = {name: sum(p.numel() for p in build_generator(nz=100, img_size=32, nc=3, ngf=64, name=name,
                                                          output="sigmoid", mean=(0.5,) * 3, std=(0.5,) * 3).parameters())
             for name in ("dcgan", "mosaickd")}
    assert sizes == {"dcgan": 1_050_947, "mosaickd": 2_026_051}
