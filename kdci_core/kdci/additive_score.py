"""The additive attention's scores ``e[b, k] = w . tanh(h[b] + g[k])`` without keeping the
``B x K x d_m`` tensor.

Written plainly, autograd materialises ``h + g`` and its tanh (saved for the backward) and, in
the backward, two more tensors of that size: at the paper's sizes (B = K = 128, d_m = 256) that
is most of a DFND step on a CPU. Here the forward computes the scores chunk by chunk over the
prototypes and saves only ``h``, ``g`` and ``w``; the backward recomputes each chunk's tanh and
reduces it at once:

    dL/dw    = sum_{b,k} G[b,k] t[b,k,:]
    dL/dh[b] = sum_k  G[b,k] w * (1 - t[b,k,:]^2)
    dL/dg[k] = sum_b  G[b,k] w * (1 - t[b,k,:]^2)

(``t = tanh(h[b] + g[k])``, ``G = dL/de``). The tanh goes through the logistic function,
``tanh(x) = 2 sigmoid(2x) - 1``, so ``e = 2 w.sigma - sum(w)`` and ``1 - t^2 = 4 sigma (1 - sigma)``:
PyTorch's CPU tanh costs ~10x its sigmoid (580 vs 60 us for a 128 x 8 x 256 block, AVX-512,
one thread), and the tanh was 78% of the scores' time. The values and gradients are those of
the plain formula to float tolerance (tests/kdci/test_additive_score.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

#: elements of one ``B x chunk x d_m`` block (CPU: stays in cache; CUDA: one block is fine)
CPU_BLOCK, CUDA_BLOCK = 1 << 18, 1 << 26


def _chunk(b: int, k: int, d: int, device: torch.device) -> int:
    budget = CUDA_BLOCK if device.type == "cuda" else CPU_BLOCK
    return max(1, min(k, budget // max(1, b * d)))


def _block(h2: Tensor, g2: Tensor) -> Tensor:
    """sigmoid(2 (h[:, None] + g[None])) for a block of prototypes, from ``h2 = 2h``, ``g2 = 2g``,
    computed in place (tanh of the sum is twice this minus one)."""
    return torch.add(h2[:, None, :], g2[None, :, :]).sigmoid_()


class _AdditiveScore(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: Tensor, g: Tensor, w: Tensor) -> Tensor:
        b, d = h.shape
        k = g.shape[0]
        step = _chunk(b, k, d, h.device)
        h2, g2, w2 = 2 * h, 2 * g, 2 * w
        out = h.new_empty(b, k)
        for k0 in range(0, k, step):
            out[:, k0:k0 + step] = _block(h2, g2[k0:k0 + step]) @ w2      # 2 w.sigma
        ctx.save_for_backward(h2, g2, w)
        ctx.step = step
        return out.sub_(w.sum())                                         # w.(2 sigma - 1) = w.t

    @staticmethod
    def backward(ctx, grad: Tensor):
        h2, g2, w = ctx.saved_tensors
        step = ctx.step
        grad = grad.to(h2.dtype)
        grad_h, grad_g, grad_w = torch.zeros_like(h2), torch.empty_like(g2), torch.zeros_like(w)
        w4 = 4 * w
        for k0 in range(0, g2.shape[0], step):
            sig = _block(h2, g2[k0:k0 + step])                  # B x kc x d
            ge = grad[:, k0:k0 + step]                          # B x kc
            grad_w += torch.einsum("bk,bkd->d", ge, sig)         # half of sum G t, less sum G below
            u = sig.sub_(sig * sig).mul_(ge[:, :, None]).mul_(w4)  # G w (1 - t^2) = 4 G w sigma (1 - sigma)
            grad_h += u.sum(1)
            grad_g[k0:k0 + step] = u.sum(0)
        return grad_h, grad_g, grad_w.mul_(2).sub_(grad.sum())


def additive_scores(h: Tensor, g: Tensor, w: Tensor) -> Tensor:
    """``e[b, k] = w . tanh(h[b] + g[k])``: ``h`` is ``B x d``, ``g`` is ``K x d``, ``w`` is
    ``d``; returns ``B x K``. Differentiable in all three."""
    dtype = torch.promote_types(h.dtype, g.dtype)  # under autocast: the Linear layers' bf16
    return _AdditiveScore.apply(h.to(dtype), g.to(dtype), w.to(dtype))


def additive_scores_reference(h: Tensor, g: Tensor, w: Tensor) -> Tensor:
    """The plain formula (what autograd sees without the custom function): the tests' reference."""
    return torch.tanh(h[:, None, :] + g[None, :, :]) @ w
