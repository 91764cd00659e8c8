"""Loss terms of the methods and the loop's KD loss (each written once, used everywhere)."""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F


def kl_divergence(s: torch.Tensor, t: torch.Tensor, tau: float = 1.0, reduction: str = "batchmean"):
    """KL(softmax(t/tau) || softmax(s/tau)) * tau^2 (DataFree's and MosaicKD's ``kldiv``);
    ``reduction="none"``: the per-sample, per-class terms (sum over dim 1 for per-sample KL)."""
    out = F.kl_div(F.log_softmax(s.float() / tau, dim=1), F.log_softmax(t.float() / tau, dim=1),
                   reduction=reduction, log_target=True)
    return out * tau * tau


def kd_loss(s_hat: torch.Tensor, t: torch.Tensor, tau: float,
            weights: torch.Tensor | None = None) -> torch.Tensor:
    """The loop's KD loss: KL(softmax(t/tau) || softmax(s_hat/tau)) * tau^2, batch mean;
    ``weights`` (one per sample, mean 1): the weighted mean instead."""
    if weights is None:
        return kl_divergence(s_hat, t, tau)
    return (kl_divergence(s_hat, t, tau, reduction="none").sum(1) * weights).mean()


def clamped_js(s: torch.Tensor, t: torch.Tensor, tau: float = 3.0, low: float = 0.01,
               high: float = 0.99) -> torch.Tensor:
    """DeepInversion's competition term (NVlabs/DeepInversion, DataFree's ``jsdiv``): P, Q the
    softmaxes at ``tau``, M = (P + Q) / 2 formed first, all three clamped to [low, high], then
    0.5 KL(M || P) + 0.5 KL(M || Q), batch mean, no tau^2."""
    p, q = F.softmax(s.float() / tau, dim=1), F.softmax(t.float() / tau, dim=1)
    m = (0.5 * (p + q)).clamp(low, high)
    p, q = p.clamp(low, high), q.clamp(low, high)
    return 0.5 * (F.kl_div(p.log(), m, reduction="batchmean") + F.kl_div(q.log(), m, reduction="batchmean"))


def agreement_masked_kl(s: torch.Tensor, t: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Fast's and CMI's adversarial divergence (Fast-Datafree, DataFree): the per-sample
    KL(t || s) at ``tau``, kept only where student and teacher agree on the class, averaged over
    the whole batch."""
    mask = (s.argmax(1) == t.argmax(1)).float()
    return (kl_divergence(s, t, tau, reduction="none").sum(1) * mask).mean()


def total_variation_l1(x: torch.Tensor) -> torch.Tensor:
    """DeepInversion's image prior in DataFree (``get_image_prior_losses``): the sum over the four
    neighbour directions (horizontal, vertical, both diagonals) of the mean absolute difference."""
    diffs = (x[:, :, :, :-1] - x[:, :, :, 1:], x[:, :, :-1, :] - x[:, :, 1:, :],
             x[:, :, 1:, :-1] - x[:, :, :-1, 1:], x[:, :, :-1, :-1] - x[:, :, 1:, 1:])
    return sum(d.abs().mean() for d in diffs)


def l2_prior(x: torch.Tensor) -> torch.Tensor:
    """DataFree's l2 image prior: ``torch.norm(x, 2)``, the Euclidean norm of the whole batch."""
    return torch.norm(x, 2)


class BNStatsHook:
    """Forward hook on a BatchNorm layer: distance between the batch's and the running statistics.

    DeepInversion's feature-distribution regulariser: ||mu(x) - mu_run||_2 + ||var(x) - var_run||_2.
    With ``momentum`` > 0 (Fast), the batch statistics are first blended with the ones stored by
    the last :meth:`update_momentum`: mu = (1 - m) mu(x) + m mu_prev, likewise the variance.
    """

    def __init__(self, module: nn.modules.batchnorm._BatchNorm, momentum: float = 0.0,
                 instance_means: bool = False):
        self.loss = None
        self.momentum = momentum
        self.instance_means = instance_means
        self.instance_mean = None  # B x C spatial means of the last input (CMI's features)
        self.stats = None      # (mean, var) of the last forward, blended
        self.previous = None   # (mean, var) kept by update_momentum
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        x = inputs[0].float()
        dims = [0] + list(range(2, x.dim()))
        if self.instance_means:
            self.instance_mean = x.mean(dims[1:]) if x.dim() > 2 else x
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
def bn_statistics(model: nn.Module, momentum: float = 0.0, previous: list | None = None,
                  instance_means: bool = False):
    """Register a BNStatsHook on every BatchNorm of ``model`` for the duration of the block.
    ``previous``: the hooks' momentum state from an earlier block (``[h.previous for h in hooks]``);
    ``instance_means``: also keep each BN input's per-sample channel means (``bn_features``)."""
    hooks = [BNStatsHook(m, momentum, instance_means) for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
             and m.running_mean is not None]
    for hook, prev in zip(hooks, previous or []):
        hook.previous = prev
    try:
        yield hooks
    finally:
        for h in hooks:
            h.remove()


def bn_features(hooks) -> torch.Tensor:
    """CMI's contrastive features: the instance means of every BN input, concatenated (B x sum C)."""
    return torch.cat([h.instance_mean for h in hooks], dim=1)


def bn_loss(hooks) -> torch.Tensor:
    losses = [h.loss for h in hooks if h.loss is not None]
    return torch.stack(losses).sum() if losses else torch.zeros(())


def information_entropy_loss(logits: torch.Tensor, base: float = math.e) -> torch.Tensor:
    """The class-balance term: sum_c p_c log_base p_c of the batch-mean class distribution p
    (minimised by a batch that covers the classes evenly). DAFL's code takes log10, MosaicKD's
    log2, DataFree's natural log."""
    p = F.softmax(logits.float(), dim=1).mean(0)
    return (p * p.clamp_min(1e-12).log()).sum() / math.log(base)


def mean_entropy(logits: torch.Tensor) -> torch.Tensor:
    """The mean entropy of the predictions (MosaicKD's ``align`` term: confident teacher outputs)."""
    logp = F.log_softmax(logits.float(), dim=1)
    return -(logp.exp() * logp).sum(1).mean()


def activation_loss(features: torch.Tensor) -> torch.Tensor:
    """DAFL's activation term: minus the mean absolute penultimate activation of the teacher."""
    return -features.float().abs().mean()
