"""Where KDCI's attention scores spend their time on a CPU: PyTorch's ``tanh`` against
``sigmoid`` on one ``B x chunk x d_m`` block, and the scores forward + backward by the engine's
chunked function (tanh through sigmoid), by the earlier chunked version that called ``tanh``
(kept here for the comparison) and by the plain formula (autograd keeps the B x K x d_m tensors).

    KDCI_NUM_THREADS=1 python benchmarks/profile_scores.py        # B = K = 128, d_m = 256
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from common import OUT, machine, write_json
from kdci_core.common.device import configure_cpu_threads
from kdci_core.kdci.additive_score import _chunk, additive_scores, additive_scores_reference


class _TanhScore(torch.autograd.Function):
    """The earlier chunked scores: the same blocks, ``tanh`` itself and ``1 - t^2``."""

    @staticmethod
    def forward(ctx, h, g, w):
        step = _chunk(h.shape[0], g.shape[0], h.shape[1], h.device)
        out = h.new_empty(h.shape[0], g.shape[0])
        for k0 in range(0, g.shape[0], step):
            out[:, k0:k0 + step] = torch.tanh(h[:, None] + g[None, k0:k0 + step]) @ w
        ctx.save_for_backward(h, g, w)
        ctx.step = step
        return out

    @staticmethod
    def backward(ctx, grad):
        h, g, w = ctx.saved_tensors
        grad_h, grad_g, grad_w = torch.zeros_like(h), torch.empty_like(g), torch.zeros_like(w)
        for k0 in range(0, g.shape[0], ctx.step):
            t = torch.tanh(h[:, None] + g[None, k0:k0 + ctx.step])
            ge = grad[:, k0:k0 + ctx.step]
            grad_w += torch.einsum("bk,bkd->d", ge, t)
            u = (1 - t * t) * ge[:, :, None] * w
            grad_h += u.sum(1)
            grad_g[k0:k0 + ctx.step] = u.sum(0)
        return grad_h, grad_g, grad_w


def median_us(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--b", type=int, default=128)
    ap.add_argument("--k", type=int, default=128)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    configure_cpu_threads()
    gen = torch.Generator().manual_seed(0)
    h, g, w = (torch.randn(*s, generator=gen) for s in ((args.b, args.d), (args.k, args.d), (args.d,)))
    chunk = _chunk(args.b, args.k, args.d, h.device)
    block = torch.randn(args.b, chunk, args.d, generator=gen)
    rows = {"tanh_block_us": median_us(lambda: torch.tanh(block), args.repeats),
            "sigmoid_block_us": median_us(lambda: torch.sigmoid(block), args.repeats)}
    for name, fn in (("chunked_sigmoid", additive_scores), ("chunked_tanh", _TanhScore.apply),
                     ("plain", additive_scores_reference)):
        hs, gs, ws = (t.clone().requires_grad_() for t in (h, g, w))

        def fwd_bwd():
            fn(hs, gs, ws).sum().backward()
        rows[f"{name}_fwd_us"] = median_us(lambda: fn(h, g, w), args.repeats)
        rows[f"{name}_fwd_bwd_us"] = median_us(fwd_bwd, args.repeats)
    print(f"\nB = {args.b}, K = {args.k}, d_m = {args.d}, block {args.b} x {chunk} x {args.d}; "
          f"median of {args.repeats}; {machine()}")
    print(f"tanh on one block    {rows['tanh_block_us']:9.0f} us")
    print(f"sigmoid on one block {rows['sigmoid_block_us']:9.0f} us")
    print(f"{'scores':<16} {'forward ms':>11} {'fwd + bwd ms':>13}")
    for name in ("chunked_sigmoid", "chunked_tanh", "plain"):
        print(f"{name:<16} {rows[name + '_fwd_us'] / 1000:11.2f} {rows[name + '_fwd_bwd_us'] / 1000:13.2f}")
    out = args.out or OUT / "profile_scores.json"
    write_json(out, {"args": vars(args) | {"out": str(out)}, "machine": machine(), "block_chunk": chunk, **rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
