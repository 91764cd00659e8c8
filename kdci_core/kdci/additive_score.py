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

(``t = tanh(h[b] + g[k])``, ``G = dL/de``). The values and gradients are those of the plain
formula to float tolerance (tests/kdci/test_additive_score.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

#: elements of one ``B x chunk x d_m`` block (CPU: stays in cache; CUDA: one block is fine)
CPU_BLOCK, CUDA_BLOCK = 1 << 18, 1 << 26


def _chunk(b: int, k: int, d: int, device: torch.device) -> int:
    budget = CUDA_BLOCK if device.type == "cuda" else CPU_BLOCK
    return max(1, min(k, budget // max(1, b * d)))


def _block(h: Tensor, g: Tensor) -> Tensor:
    """tanh(h[:, None] + g[None]) for a block of prototypes ``g``, computed in place."""
    return torch.add(h[:, None, :], g[None, :, :]).tanh_()


class _AdditiveScore(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: Tensor, g: Tensor, w: Tensor) -> Tensor:
        b, d = h.shape
        k = g.shape[0]
        step = _chunk(b, k, d, h.device)
        out = h.new_empty(b, k)
        for k0 in range(0, k, step):
            out[:, k0:k0 + step] = _block(h, g[k0:k0 + step]) @ w
        ctx.save_for_backward(h, g, w)
        ctx.step = step
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        h, g, w = ctx.saved_tensors
        step = ctx.step
        grad = grad.to(h.dtype)
        grad_h, grad_g, grad_w = torch.zeros_like(h), torch.empty_like(g), torch.zeros_like(w)
        for k0 in range(0, g.shape[0], step):
            t = _block(h, g[k0:k0 + step])                     # B x kc x d
            ge = grad[:, k0:k0 + step]                          # B x kc
            grad_w += torch.einsum("bk,bkd->d", ge, t)
            u = t.mul_(t).neg_().add_(1.0).mul_(ge[:, :, None]).mul_(w)  # G w (1 - t^2), in place
            grad_h += u.sum(1)
            grad_g[k0:k0 + step] = u.sum(0)
        return grad_h, grad_g, grad_w


def additive_scores(h: Tensor, g: Tensor, w: Tensor) -> Tensor:
    """``e[b, k] = w . tanh(h[b] + g[k])``: ``h`` is ``B x d``, ``g`` is ``K x d``, ``w`` is
    ``d``; returns ``B x K``. Differentiable in all three."""
    dtype = torch.promote_types(h.dtype, g.dtype)  # under autocast: the Linear layers' bf16
    return _AdditiveScore.apply(h.to(dtype), g.to(dtype), w.to(dtype))


def additive_scores_reference(h: Tensor, g: Tensor, w: Tensor) -> Tensor:
    """The plain formula (what autograd sees without the custom function): the tests' reference."""
    return torch.tanh(h[:, None, :] + g[None, :, :]) @ w
