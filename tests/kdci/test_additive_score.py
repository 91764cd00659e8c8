"""The chunked additive-attention scores equal the plain formula, values and gradients, at any
chunking; the module's attention is unchanged by using them."""

from __future__ import annotations

import pytest
import torch

from kdci_core.kdci import additive_score
from kdci_core.kdci.additive_score import additive_scores, additive_scores_reference
from kdci_core.kdci.intervention import CausalIntervention


def _inputs(b, k, d, dtype=torch.float64, seed=0, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    mk = lambda *shape: (torch.randn(*shape, generator=gen, dtype=dtype) * scale).requires_grad_()  # noqa: E731
    return mk(b, d), mk(k, d), mk(d)


@pytest.mark.parametrize("block", [1, 7 * 5, 1 << 18])  # one prototype a block, ragged blocks, all at once
def test_values_and_gradients_match_the_plain_formula(monkeypatch, block):
    monkeypatch.setattr(additive_score, "CPU_BLOCK", block)
    h, g, w = _inputs(7, 11, 5)
    got = additive_scores(h, g, w)
    want = additive_scores_reference(h, g, w)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    upstream = torch.randn_like(got)
    grads = torch.autograd.grad((got * upstream).sum(), (h, g, w))
    ref = torch.autograd.grad((want * upstream).sum(), (h, g, w))
    for a, b in zip(grads, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_gradcheck():
    h, g, w = _inputs(3, 4, 2, scale=1.0)
    assert torch.autograd.gradcheck(additive_scores, (h, g, w))


def test_float32_at_the_papers_sizes():
    """B = K = 128, d_m = 256 with logit-sized inputs (saturating tanh): in float32 the chunked
    scores and gradients are as close to the float64 truth as the plain formula's are."""
    h64, g64, w64 = _inputs(128, 128, 256, scale=2.0)
    upstream = torch.randn(128, 128, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def run(fn, dtype):
        h, g, w = (t.detach().to(dtype).requires_grad_() for t in (h64, g64, w64))
        out = fn(h, g, w)
        return [out, *torch.autograd.grad((out * upstream.to(dtype)).sum(), (h, g, w))]

    truth = run(additive_scores_reference, torch.float64)
    plain = run(additive_scores_reference, torch.float32)
    ours = run(additive_scores, torch.float32)
    for t, p, o in zip(truth, plain, ours):
        assert (o.double() - t).abs().max() <= 4 * (p.double() - t).abs().max() + 1e-6


def test_module_attention_and_its_gradients_are_unchanged():
    torch.manual_seed(0)
    ci = CausalIntervention(10, attn_dim=16)
    s = (torch.randn(6, 10) * 5).requires_grad_()
    z, p = torch.randn(9, 10) * 5, torch.softmax(torch.randn(9), 0)
    out = ci(s, z, p)
    h, g = ci.W_h(s), ci.W_z(z)
    lam = torch.softmax(ci.w(torch.tanh(h[:, None, :] + g[None, :, :])).squeeze(-1), dim=1)
    want = s + (lam * p[None, :]) @ z
    torch.testing.assert_close(out, want)
    params = [s, ci.W_h.weight, ci.W_z.weight, ci.w.weight]
    for a, b in zip(torch.autograd.grad(out.square().sum(), params),
                    torch.autograd.grad(want.square().sum(), params)):
        torch.testing.assert_close(a, b)
