"""Loss terms of the methods and the loop's KD loss (each written once, used everywhere)."""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F


def kd_loss(s_hat: torch.Tensor, t: torch.Tensor, tau: float) -> torch.Tensor:
    """KL(softmax(t/tau) || softmax(s_hat/tau)) * tau^2, averaged over the batch."""
    return F.kl_div(F.log_softmax(s_hat.float() / tau, dim=1), F.log_softmax(t.float() / tau, dim=1),
                    reduction="batchmean", log_target=True) * tau * tau


def js_divergence(a: torch.Tensor, b: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Jensen-Shannon divergence between the softmaxes of two logit batches (batch mean)."""
    p, q = F.softmax(a.float() / tau, dim=1), F.softmax(b.float() / tau, dim=1)
    m = (0.5 * (p + q)).clamp_min(1e-8).log()
    return 0.5 * (F.kl_div(m, p, reduction="batchmean") + F.kl_div(m, q, reduction="batchmean"))


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels (the l2 TV prior, size-independent)."""
    dx = x[..., :, 1:] - x[..., :, :-1]
    dy = x[..., 1:, :] - x[..., :-1, :]
    return dx.pow(2).mean() + dy.pow(2).mean()


def l2_prior(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean()


class BNStatsHook:
    """Forward hook on a BatchNorm layer: distance between the batch's and the running statistics.

    DeepInversion's feature-distribution regulariser: ||mu(x) - mu_run||_2 + ||var(x) - var_run||_2.
    With ``momentum`` > 0 (Fast), the batch statistics are first blended with the ones stored by
    the last :meth:`update_momentum`: mu = (1 - m) mu(x) + m mu_prev, likewise the variance.
    """

    def __init__(self, module: nn.modules.batchnorm._BatchNorm, momentum: float = 0.0):
        self.loss = None
        self.momentum = momentum
        self.stats = None      # (mean, var) of the last forward, blended
        self.previous = None   # (mean, var) kept by update_momentum
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        x = inputs[0].float()
        dims = [0] + list(range(2, x.dim()))
        mean = x.mean(dims)
        var = x.var(dims, unbiased=False)
        if self.momentum > 0 and self.previous is not None:
            mean = (1 - self.momentum) * mean + self.momentum * self.previous[0]
            var = (1 - self.momentum) * var + self.momentum * self.previous[1]
        self.stats = (mean, var)
        self.loss = (torch.norm(mean - module.running_mean, 2) + torch.norm(var - module.running_var, 2))

    def update_momentum(self):
        if self.stats is not None:
            self.previous = (self.stats[0].detach(), self.stats[1].detach())

    def remove(self):
        self.handle.remove()


@contextmanager
def bn_statistics(model: nn.Module, momentum: float = 0.0, previous: list | None = None):
    """Register a BNStatsHook on every BatchNorm of ``model`` for the duration of the block.
    ``previous``: the hooks' momentum state from an earlier block (``[h.previous for h in hooks]``)."""
    hooks = [BNStatsHook(m, momentum) for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
             and m.running_mean is not None]
    for hook, prev in zip(hooks, previous or []):
        hook.previous = prev
    try:
        yield hooks
    finally:
        for h in hooks:
            h.remove()


def bn_loss(hooks) -> torch.Tensor:
    losses = [h.loss for h in hooks if h.loss is not None]
    return torch.stack(losses).sum() if losses else torch.zeros(())


def information_entropy_loss(logits: torch.Tensor) -> torch.Tensor:
    """DAFL's class-balance term: negative entropy of the batch-mean class distribution
    (minimised when the batch covers the classes evenly), shifted so that balance gives 0."""
    p = F.softmax(logits.float(), dim=1).mean(0)
    return (p * p.clamp_min(1e-8).log()).sum() + torch.log(torch.tensor(float(logits.shape[1])))


def activation_loss(features: torch.Tensor) -> torch.Tensor:
    """DAFL's activation term: minus the mean absolute penultimate activation of the teacher."""
    return -features.float().abs().mean()
