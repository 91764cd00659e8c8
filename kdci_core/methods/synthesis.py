"""Synthesis objectives shared by the generation-based methods (DeepInv, DAFL, Fast, CMI,
MosaicKD): each method picks terms, weights and the form of its adversarial term; none
re-implements a term.

``teacher_objectives`` computes, for images ``x`` (which carry gradients to pixels or to a
generator), the weighted terms named in ``weights``:
- ``bn``: BatchNorm-statistics distance summed over the teacher's BN layers (needs the hooks of
  ``losses.bn_statistics`` registered around the call);
- ``oh``: cross-entropy to ``targets`` (or, when None, to the teacher's own argmax: DAFL);
- ``adv``: minus a teacher/student divergence (seek disagreement), in the form the method's
  reference uses (``ADVERSARIAL``), the student given by the caller;
- ``balance``: the class-balance term on the batch-mean prediction (log base per method);
- ``align``: the mean entropy of the teacher's predictions (MosaicKD);
- ``act``: activation term on the teacher's penultimate features (DAFL);
- ``tv``, ``l2``: image priors, on ``prior_images`` when given (DeepInv: the un-jittered batch).
Returns ``(total, terms, teacher_logits)`` with every term already weighted.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models import build_generator
from .base import GenerationMethod
from .losses import (activation_loss, agreement_masked_kl, bn_loss, clamped_js,
                     information_entropy_loss, kl_divergence, l2_prior, mean_entropy,
                     total_variation_l1)

TERMS = ("bn", "oh", "adv", "balance", "align", "act", "tv", "l2")

#: the adversarial divergences of the references, each at its own temperature:
#: DeepInversion's clamped JS at T=3 (NVlabs/DeepInversion, DataFree deepinversion.py), Fast's and
#: CMI's KL at T=1 where student and teacher agree (Fast-Datafree fast_meta.py, DataFree
#: contrastive.py), MosaicKD's plain KL at T=1 (kd_mosaic.py)
ADVERSARIAL = {
    "clamped-js": lambda s, t: clamped_js(s, t, tau=3.0),
    "masked-kl": lambda s, t: agreement_masked_kl(s, t, tau=1.0),
    "kl": lambda s, t: kl_divergence(s, t, tau=1.0),
}


def teacher_objectives(teacher: nn.Module, x: torch.Tensor, *, weights: dict, hooks=None,
                       targets: torch.Tensor | None = None, student: nn.Module | None = None,
                       adv: str = "clamped-js", balance_base: float = math.e,
                       prior_images: torch.Tensor | None = None):
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
        terms["adv"] = -ADVERSARIAL[adv](student(x), t)
    if "balance" in active:
        terms["balance"] = information_entropy_loss(t, balance_base)
    if "align" in active:
        terms["align"] = mean_entropy(t)
    if "act" in active:
        terms["act"] = activation_loss(feats)
    priors = x if prior_images is None else prior_images
    if "tv" in active:
        terms["tv"] = total_variation_l1(priors)
    if "l2" in active:
        terms["l2"] = l2_prior(priors)
    weighted = {k: active[k] * v for k, v in terms.items()}
    total = sum(weighted.values()) if weighted else x.sum() * 0.0
    return total, weighted, t


def new_generator(ctx, params: dict, output: str = "sigmoid", name: str = "dcgan") -> nn.Module:
    """A fresh generator for the run's images (``params``: ``nz``, ``ngf``); ``output`` is the
    reference's head: ``sigmoid`` (DataFree's Generator, then the dataset normalisation) or
    ``tanh-bn`` (DAFL's: Tanh, then BatchNorm without affine); ``name``: the network
    (``models.generators``: DataFree's ``dcgan``, MosaicKD's wider ``mosaickd``)."""
    info = ctx.info
    return build_generator(nz=params["nz"], img_size=info.image_size, nc=info.in_channels,
                           ngf=params["ngf"], output=output, mean=info.mean, std=info.std,
                           name=name).to(ctx.device)


def latent_codes(n: int, nz: int, gen: torch.Generator, device) -> torch.Tensor:
    return torch.randn(n, nz, generator=gen).to(device)


def reset_generator(generator: nn.Module, gen: torch.Generator) -> None:
    """CMI's re-initialisation of its generator each round (DataFree contrastive.py
    ``reset_model``): convolutions and linear layers N(0, 0.02) with zero bias, BatchNorm weight
    N(1, 0.02) with zero bias (running statistics kept)."""
    with torch.no_grad():
        for m in generator.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.02)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d) and m.affine:
                m.weight.copy_(1.0 + torch.randn(m.weight.shape, generator=gen) * 0.02)
                m.bias.zero_()


class GeneratorMethod(GenerationMethod):
    """A generation method whose images come from a generator G(z).

    Parameters every subclass accepts: ``nz`` (latent size), ``ngf`` (generator width),
    ``lr_g`` (generator Adam learning rate), plus GenerationMethod's ``synth_batch``,
    ``synth_every`` and ``pool_size``. ``generator_output``: the reference generator's head.
    """

    generator_output = "sigmoid"
    #: the generator's Adam betas (DataFree's and Fast-Datafree's synthesizers: 0.5, 0.999)
    generator_betas = (0.5, 0.999)

    def __init__(self, ctx):
        super().__init__(ctx)
        info = ctx.info
        torch.manual_seed(ctx.seed)  # the generator's initial weights follow the run seed
        self.generator = self.new_generator()
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), lr=self.params["lr_g"],
                                            betas=self.generator_betas)
        self.shape = (info.in_channels, info.image_size, info.image_size)

    def new_generator(self) -> nn.Module:
        return new_generator(self.ctx, self.params, self.generator_output)

    def latent(self, n: int) -> torch.Tensor:
        return latent_codes(n, self.params["nz"], self.rng, self.ctx.device)

    def targets(self, n: int) -> torch.Tensor:
        return self._randint(self.ctx.info.num_classes, n).to(self.ctx.device)
