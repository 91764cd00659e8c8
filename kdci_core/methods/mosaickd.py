"""MosaicKD (Fang et al., NeurIPS 2021, "Mosaicking to Distill: Knowledge Distillation from
Out-of-Domain Data").

Substitution data: the ``n_select`` wild (out-of-domain) images the teacher is *least* confident
about, fixed before distillation (so KDCI's dictionary is built once from them), mixed half and
half with images from a generator G. G is trained against a patch discriminator D that tells real
OOD patches from generated ones, so G's *local* patterns come from the OOD data, while the teacher
terms (``oh``, ``balance``, ``adv`` of ``teacher_objectives``) make the mosaicked images in-domain,
class-balanced and hard for the student. The student loss is the loop's KD alone, as in MosaicKD.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..common.errors import InputError
from ..common.progress import report
from .base import SamplingMethod, SyntheticPool, clip_images
from .registry import METHODS
from .synthesis import latent_codes, new_generator, teacher_objectives
from .wild import load_and_select


class PatchDiscriminator(nn.Module):
    """Fully-convolutional PatchGAN: one logit per ``patch_size`` x ``patch_size`` patch.

    Two valid (unpadded, stride-1) convolutions whose receptive fields add up to exactly
    ``patch_size``, then a 1x1 convolution: logit (i, j) depends only on the patch at (i, j), so
    an H x W image gives (H - p + 1) x (W - p + 1) logits, none touching a padded border.
    """

    def __init__(self, nc: int, patch_size: int, ndf: int = 64):
        super().__init__()
        k1 = max(1, patch_size // 2)
        k2 = patch_size - k1 + 1
        self.patch_size = patch_size
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, k1), nn.LeakyReLU(0.2),
            nn.Conv2d(ndf, ndf * 2, k2, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2),
            nn.Conv2d(ndf * 2, 1, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def patch_bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """BCE-with-logits of every patch logit against real (1) or fake (0), summed over each
    image's patches and averaged over images (MosaicKD's code: reduction='sum' / batch size)."""
    target = torch.full_like(logits, 1.0 if real else 0.0)
    return F.binary_cross_entropy_with_logits(logits.float(), target, reduction="sum") / len(logits)


@METHODS.register("mosaickd")
class MosaicKD(SamplingMethod):
    """Sampling method (fixed OOD selection) that also trains a generator; ``refresh`` returns None.

    The generator helpers (``new_generator``, ``latent``) and ``clip`` are borrowed from
    GeneratorMethod/GenerationMethod as plain functions: inheriting them would make this a
    generation method too (two ``kind``s, two ``sample``s in one MRO).
    """

    default_k = 128  # KDCI's K for sampled unlabeled data (KDCI paper, section 4.3)
    default_tau = 4.0  # MosaicKD's code uses T=1; 4 (common KD value) distils far better here
    defaults = {
        "pool_size": 20_000, "n_select": 2_000, "synth_batch": 64, "g_steps": 5, "synth_every": 5,
        "synth_pool": 2_000, "nz": 100, "ngf": 64, "ndf": 64, "patch_size": 4,
        "lr_g": 0.001, "lr_d": 0.001, "local": 1.0, "oh": 1.0, "balance": 10.0, "adv": 1.0,
    }
    sources = {
        "pool_size": "chosen here (the default wild pool is crops of 2 photographs)",
        "n_select": "chosen here (MosaicKD's --ood_subset keeps the least confident images; "
                    "N scaled to the pool)",
        "synth_batch": "MosaicKD uses the student batch (256); 64 here for a CPU",
        "g_steps": "MosaicKD: 1 D+G update per 5 student steps; 5 here (500 student steps, not 78k)",
        "synth_every": "MosaicKD code: 5 student (KD) steps per D+G update",
        "synth_pool": "chosen here (MosaicKD draws fresh G samples each step; a small ring "
                      "buffer keeps the synthetic half close to the current G)",
        "nz": "MosaicKD code (--z_dim 100)", "ngf": "MosaicKD Generator (ngf=64)",
        "ndf": "MosaicKD uses ndf=128; 64 here for 8-28 px inputs on a CPU",
        "patch_size": "chosen here (MosaicKD's patch discriminator sees 10 px of 32 px images; "
                      "about a third to half of the side here)",
        "lr_g": "MosaicKD code (--lr_g 1e-3, Adam betas 0.5/0.999)",
        "lr_d": "MosaicKD code (the discriminator's Adam also uses --lr_g 1e-3)",
        "local": "MosaicKD README (--local 1)",
        "oh": "MosaicKD README (--align 1; its align term is the teacher's entropy, CE to the "
              "teacher's argmax here)",
        "balance": "MosaicKD README (--balance 10)", "adv": "MosaicKD README (--adv 1)",
    }

    ranges = {"synth_batch": (2, 1_000_000), "lr_g": (1e-8, 10.0), "lr_d": (1e-8, 10.0)}

    def __init__(self, ctx):
        super().__init__(ctx)
        p, info = self.p, ctx.info
        if p["n_select"] > p["pool_size"]:
            raise InputError(f"mosaickd.n_select: expected at most pool_size={p['pool_size']}, "
                             f"found {p['n_select']}")
        if p["patch_size"] > info.image_size:
            raise InputError(f"mosaickd.patch_size: expected at most the image size "
                             f"{info.image_size}, found {p['patch_size']}")
        self.generator = new_generator(self.ctx, self.p)
        self.discriminator = PatchDiscriminator(info.in_channels, p["patch_size"], p["ndf"]).to(ctx.device)
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), lr=p["lr_g"], betas=(0.5, 0.999))
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=p["lr_d"],
                                            betas=(0.5, 0.999))
        self.pool = SyntheticPool(p["synth_pool"])
        self.rounds = 0
        self.last_terms: dict = {}  # the last generator step's weighted terms (diagnostics)

    def prepare(self):
        self.selected, _ = load_and_select(self.ctx, pool_size=self.p["pool_size"],
                                           n_select=self.p["n_select"], least=True,
                                           desc="mosaickd: scoring the wild pool")

    def generate(self, n: int) -> torch.Tensor:
        """G(z) inside the valid image range (the clamp passes gradients where it does not bind)."""
        z = latent_codes(n, self.p["nz"], self.gen, self.ctx.device)
        return clip_images(self.generator(z), self.ctx.info)

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Real OOD patches -> 1, generated patches -> 0 (``fake`` is detached: D only)."""
        d = self.discriminator
        return 0.5 * (patch_bce(d(real), True) + patch_bce(d(fake.detach()), False))

    def generator_terms(self, fake: torch.Tensor, student: nn.Module) -> dict:
        """``local`` (fool D: generated patches -> 1) + the teacher terms oh/balance/adv."""
        terms = {}
        if self.p["local"] > 0:
            terms["local"] = self.p["local"] * patch_bce(self.discriminator(fake), True)
        _, teacher_terms, _ = teacher_objectives(self.ctx.teacher, fake, weights=self.p,
                                                 student=student, tau=self.ctx.tau)
        return terms | teacher_terms

    def refresh(self, step, student):
        p = self.p
        if step % p["synth_every"] != 0:
            return None
        self.generator.train()
        self.discriminator.train()
        for it in range(p["g_steps"]):
            fake = self.generate(p["synth_batch"])
            if p["local"] > 0:
                real = SamplingMethod.sample(self, p["synth_batch"])
                self.d_optimizer.zero_grad(set_to_none=True)
                self.discriminator_loss(real, fake).backward()
                self.d_optimizer.step()
            terms = self.generator_terms(fake, student)
            loss = sum(terms.values(), fake.sum() * 0.0)
            self.g_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.g_optimizer.step()
            self.last_terms = {k: float(v.detach()) for k, v in terms.items()}
            report(self.ctx.progress, it + 1, p["g_steps"], f"mosaickd generator (round {self.rounds + 1})")
        with torch.no_grad():
            self.pool.add(self.generate(p["synth_batch"]))
        self.rounds += 1
        return None  # the dictionary stays the one built from the OOD selection (KDCI.md)

    def sample(self, batch_size):
        """Half synthetic (once the pool has images), half selected OOD images."""
        if len(self.pool) == 0:
            return super().sample(batch_size)
        n_syn = batch_size // 2
        return torch.cat([self.pool.sample(n_syn, self.gen), super().sample(batch_size - n_syn)])
