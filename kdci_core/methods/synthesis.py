"""Synthesis objectives shared by the generation-based methods (DeepInv, DAFL, Fast, CMI,
MosaicKD): each method picks terms and weights; none re-implements a term.

``teacher_objectives`` computes, for images ``x`` (which carry gradients to pixels or to a
generator), the weighted terms named in ``weights``:
- ``bn``: BatchNorm-statistics distance summed over the teacher's BN layers (needs the hooks of
  ``losses.bn_statistics`` registered around the call);
- ``oh``: cross-entropy to ``targets`` (or, when None, to the teacher's own argmax: DAFL);
- ``adv``: minus the teacher/student Jensen-Shannon divergence (seek disagreement), the student
  being the raw student in eval mode;
- ``balance``: information-entropy class-balance term (DAFL, MosaicKD);
- ``act``: activation term on the teacher's penultimate features (DAFL);
- ``tv``, ``l2``: image priors.
Returns ``(total, terms, teacher_logits)`` with every term already weighted.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models import build_generator
from .base import GenerationMethod
from .losses import (activation_loss, bn_loss, information_entropy_loss, js_divergence, l2_prior,
                     total_variation)

TERMS = ("bn", "oh", "adv", "balance", "act", "tv", "l2")


def teacher_objectives(teacher: nn.Module, x: torch.Tensor, *, weights: dict, hooks=None,
                       targets: torch.Tensor | None = None, student: nn.Module | None = None,
                       tau: float = 1.0):
    active = {k: float(w) for k, w in weights.items() if k in TERMS and float(w) > 0}
    if "act" in active:
        t, feats = teacher(x, return_features=True)
    else:
        t, feats = teacher(x), None
    terms = {}
    if "bn" in active:
        terms["bn"] = bn_loss(hooks or [])
    if "oh" in active:
        terms["oh"] = F.cross_entropy(t, targets if targets is not None else t.argmax(1))
    if "adv" in active and student is not None:
        terms["adv"] = -js_divergence(student(x), t, tau)
    if "balance" in active:
        terms["balance"] = information_entropy_loss(t)
    if "act" in active:
        terms["act"] = activation_loss(feats)
    if "tv" in active:
        terms["tv"] = total_variation(x)
    if "l2" in active:
        terms["l2"] = l2_prior(x)
    weighted = {k: active[k] * v for k, v in terms.items()}
    total = sum(weighted.values()) if weighted else x.sum() * 0.0
    return total, weighted, t


def new_generator(ctx, params: dict) -> nn.Module:
    """A fresh generator for the run's image shape (``params``: ``nz``, ``ngf``)."""
    info = ctx.info
    return build_generator(nz=params["nz"], img_size=info.image_size, nc=info.in_channels,
                           ngf=params["ngf"]).to(ctx.device)


def latent_codes(n: int, nz: int, gen: torch.Generator, device) -> torch.Tensor:
    return torch.randn(n, nz, generator=gen).to(device)


class GeneratorMethod(GenerationMethod):
    """A generation method whose images come from a generator G(z) (DataFree's DCGAN-style one).

    Parameters every subclass accepts: ``nz`` (latent size), ``ngf`` (generator width),
    ``lr_g`` (generator Adam learning rate), plus GenerationMethod's ``synth_batch``,
    ``synth_every`` and ``pool_size``.
    """

    def __init__(self, ctx):
        super().__init__(ctx)
        info = ctx.info
        torch.manual_seed(ctx.seed)  # the generator's initial weights follow the run seed
        self.generator = self.new_generator()
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), lr=self.p["lr_g"],
                                            betas=(0.5, 0.999))
        self.shape = (info.in_channels, info.image_size, info.image_size)

    def new_generator(self) -> nn.Module:
        return new_generator(self.ctx, self.p)

    def latent(self, n: int) -> torch.Tensor:
        return latent_codes(n, self.p["nz"], self.gen, self.ctx.device)

    def targets(self, n: int) -> torch.Tensor:
        return self._randint(self.ctx.info.num_classes, n).to(self.ctx.device)
