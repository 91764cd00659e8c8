"""The references' loss terms on tiny tensors, against their formulas computed by hand:
DeepInversion's clamped JS at T=3, Fast's and CMI's agreement-masked KL, MosaicKD's KL and
entropies, DataFree's four-direction L1 total variation, CMI's BN-input features."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from kdci_core.methods.losses import (agreement_masked_kl, bn_features, bn_statistics, clamped_js,
                                      information_entropy_loss, kd_loss, kl_divergence, mean_entropy,
                                      total_variation_l1)
from kdci_core.models import build_model

S = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
T = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 3.0]])


def _softmax(row, tau):
    e = [math.exp(v / tau) for v in row]
    return [x / sum(e) for x in e]


def _kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def test_clamped_js_at_t3_by_hand():
    by_hand = 0.0
    for s, t in zip(S.tolist(), T.tolist()):
        p, q = _softmax(s, 3.0), _softmax(t, 3.0)
        m = [min(max(0.5 * (a + b), 0.01), 0.99) for a, b in zip(p, q)]
        p = [min(max(a, 0.01), 0.99) for a in p]
        q = [min(max(a, 0.01), 0.99) for a in q]
        by_hand += 0.5 * sum(mi * math.log(mi / pi) for mi, pi in zip(m, p))
        by_hand += 0.5 * sum(mi * math.log(mi / qi) for mi, qi in zip(m, q))
    assert clamped_js(S, T).item() == pytest.approx(by_hand / 2, rel=1e-5)
    sure = torch.tensor([[50.0, 0.0, 0.0]])  # clamping bounds the term for saturated outputs
    assert clamped_js(sure, -sure).item() < 5.0


def test_agreement_masked_kl_by_hand():
    # row 0: both argmax 0 (kept); row 1: student 1, teacher 2 (masked out); mean over both rows
    kept = _kl(_softmax(T[0].tolist(), 1.0), _softmax(S[0].tolist(), 1.0))
    assert agreement_masked_kl(S, T).item() == pytest.approx(kept / 2, rel=1e-5)
    assert agreement_masked_kl(S, S).item() == pytest.approx(0.0, abs=1e-6)


def test_kl_divergence_is_kd_at_its_temperature():
    tau = 4.0
    by_hand = sum(_kl(_softmax(t, tau), _softmax(s, tau)) for s, t in zip(S.tolist(), T.tolist())) / 2
    assert kl_divergence(S, T, tau).item() == pytest.approx(by_hand * tau * tau, rel=1e-5)
    assert kd_loss(S, T, tau).item() == pytest.approx(by_hand * tau * tau, rel=1e-5)
    per_sample = kl_divergence(S, T, 1.0, reduction="none").sum(1)
    assert per_sample.shape == (2,) and per_sample.mean().item() == pytest.approx(
        kl_divergence(S, T, 1.0).item(), rel=1e-6)


def test_entropy_terms_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])
    p0, p1 = [0.25, 0.75], [0.5, 0.5]
    ent = -(sum(a * math.log(a) for a in p0) + sum(a * math.log(a) for a in p1)) / 2
    assert mean_entropy(logits).item() == pytest.approx(ent, rel=1e-6)
    mean = [(a + b) / 2 for a, b in zip(p0, p1)]
    assert information_entropy_loss(logits, base=2.0).item() == pytest.approx(
        sum(a * math.log2(a) for a in mean), rel=1e-6)  # MosaicKD: (py * log2 py).sum()


def test_total_variation_l1_four_directions_by_hand():
    x = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # horizontal |0-1|, |2-4| -> 1.5; vertical |0-2|, |1-4| -> 2.5; diagonals |2-1| = 1, |0-4| = 4
    assert total_variation_l1(x).item() == pytest.approx(1.5 + 2.5 + 1.0 + 4.0)
    assert total_variation_l1(torch.ones(2, 3, 5, 5)).item() == 0.0


def test_bn_features_are_instance_means_of_every_bn_input():
    model = build_model("lenet5", num_classes=3, in_channels=1).eval()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    seen = []
    handles = [m.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].mean((2, 3))))
               for m in bns]
    x = torch.randn(4, 1, 8, 8)
    with bn_statistics(model, instance_means=True) as hooks:
        model(x)
        feats = bn_features(hooks)
    for h in handles:
        h.remove()
    assert feats.shape == (4, sum(m.num_features for m in bns))
    assert torch.allclose(feats, torch.cat(seen, 1), atol=1e-6)


def test_l2_prior_is_datafrees_norm_of_the_batch():
    """DataFree's DeepInversion l2 prior: torch.norm(x, 2), not the mean square."""
    from kdci_core.methods.losses import l2_prior

    x = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
    assert l2_prior(x).item() == pytest.approx(5.0)
