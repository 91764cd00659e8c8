"""MosaicKD (Fang et al., NeurIPS 2021, "Mosaicking to Distill: Knowledge Distillation from
Out-of-Domain Data"), as its code computes it (zju-vipa/MosaicKD, kd_mosaic.py).

Substitution data: the ``n_select`` wild (out-of-domain) images the teacher is *least* confident
about (highest predictive entropy), fixed before distillation (so KDCI's dictionary is built once
from them), mixed half and half with *fresh* images of a generator G at every student step. Every
``synth_every`` student steps a patch discriminator D (a 2-layer stride-2 PatchGAN) takes one step
telling real OOD images from generated ones, then G takes ``g_steps`` steps: fool D (``local``, so
its local patterns come from the OOD data), the teacher's confidence (``align``: its mean
entropy) and class balance (``balance``: log2 entropy of the mean prediction), and disagreement
with the student (``adv``: - KL(teacher || student) at T=1, the student in train mode as in the
reference, so its BatchNorm statistics also see G's images). The student loss is the loop's KD
alone at T=1. The OOD half of a student batch is augmented as the dataset declares; the
synthetic half is not (the reference augments only the OOD loader).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..common.errors import InputError
from ..common.progress import report
from .base import SamplingMethod
from .registry import METHODS
from .synthesis import latent_codes, new_generator, teacher_objectives
from .wild import load_and_select

_REF = "MosaicKD kd_mosaic.py"


class PatchDiscriminator(nn.Module):
    """MosaicKD's PatchGAN (engine/models/generator.py): Conv 4x4 stride 2 -> LeakyReLU, Conv 4x4
    stride 2 -> BatchNorm -> LeakyReLU, Conv 1x1 to one logit per patch (10 x 10 px receptive
    field, 8 x 8 logits on a 32 px image), on whole images."""

    def __init__(self, nc: int, ndf: int = 128):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2),
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

    The generator helpers (``new_generator``, ``latent_codes``) are borrowed as plain functions:
    inheriting GeneratorMethod would make this a generation method too (two ``kind``s, two
    ``sample``s in one MRO).
    """

    default_k = 128  # KDCI's K for sampled unlabeled data (KDCI paper, section 4.3)
    default_tau = 1.0  # kd_mosaic.py --T 1 (the README never sets it)
    #: the pool is scored by the teacher's outputs; G trains through it (align, balance, adv)
    teacher_needs = frozenset({"logits", "gradients"})
    augments_itself = True  # only the OOD half of a student batch is augmented
    student_source = ('kd_mosaic.py (SGD lr 0.1, momentum 0.9, weight decay 1e-4, cosine); quick: lr 0.01')
    loop_source = ('kd_mosaic.py: 256 synthetic + 256 OOD a batch, 200 epochs of 196 x 5 student steps; quick: CPU-sized')
    defaults = {
        "pool_size": 20_000, "n_select": 2_000, "synth_batch": 64, "g_steps": 1, "synth_every": 5,
        "nz": 100, "ngf": 64, "ndf": 64, "lr_g": 0.001, "lr_d": 0.001,
        "local": 1.0, "align": 1.0, "balance": 10.0, "adv": 1.0, "balanced": False,
    }
    paper_params = {"pool_size": 1_281_167, "n_select": 50_000, "synth_batch": 256, "ndf": 128}
    #: kd_mosaic.py: 256 synthetic + 256 OOD images a student batch; 200 epochs of 196 outer
    #: iterations (50k / 256) x 5 KD steps
    paper_loop = {"batch_size": 512, "steps_per_epoch": 980}
    sources = {
        "pool_size": f"{_REF} scores ImageNet-32 or Places-32 (paper preset: 1,281,167); here the "
                     "default wild pool is crops of 2 photographs",
        "n_select": f"{_REF} keeps as many OOD images as the in-domain train set (50,000, paper "
                    "preset; --ood_subset, highest teacher entropy); N scaled to the pool here",
        "synth_batch": f"{_REF} uses the batch size (256, paper preset); 64 here for a CPU",
        "g_steps": f"{_REF}: one D step and one G step per 5 student steps",
        "synth_every": f"{_REF}: 5 student (KD) steps per D+G update",
        "nz": f"{_REF} (--z_dim 100)",
        "ngf": "MosaicKD engine/models/generator.py Generator (ngf=64; its first stage 4 x ngf)",
        "ndf": f"{_REF} PatchDiscriminator(ndf=128) (paper preset); 64 here for 8-28 px inputs on a CPU",
        "lr_g": f"{_REF} (--lr_g 1e-3, Adam betas 0.5/0.999)",
        "lr_d": f"{_REF} (the discriminator's Adam also uses --lr_g 1e-3)",
        "local": "MosaicKD README (--local 1; it also scales the discriminator's loss)",
        "align": "MosaicKD README (--align 1: the teacher's mean entropy)",
        "balance": "MosaicKD README (--balance 10, on the log2 entropy of the mean prediction)",
        "adv": "MosaicKD README (--adv 1: - KL(teacher || student) at T=1, unmasked)",
        "balanced": "option (--correction balanced sets it): the least confident n_select/C per "
                    "predicted class instead",
    }

    ranges = {"synth_batch": (2, 1_000_000), "lr_g": (1e-8, 10.0), "lr_d": (1e-8, 10.0)}

    def __init__(self, ctx):
        super().__init__(ctx)
        p, info = self.params, ctx.info
        if p["n_select"] > p["pool_size"]:
            raise InputError(f"mosaickd.n_select: expected at most pool_size={p['pool_size']}, "
                             f"found {p['n_select']}")
        self.generator = new_generator(self.ctx, self.params, name="mosaickd")  # its own, 4 x ngf wide
        self.discriminator = PatchDiscriminator(info.in_channels, p["ndf"]).to(ctx.device)
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), lr=p["lr_g"], betas=(0.5, 0.999))
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=p["lr_d"],
                                            betas=(0.5, 0.999))
        self.rounds = 0
        self.last_terms: dict = {}  # the last generator step's weighted terms (diagnostics)

    def prepare(self):
        self.selected, _ = load_and_select(self.ctx, pool_size=self.params["pool_size"],
                                           n_select=self.params["n_select"], score="entropy", least=True,
                                           balanced=self.params["balanced"],
                                           desc="mosaickd: scoring the wild pool")

    def generate(self, n: int) -> torch.Tensor:
        """G(z), normalised (the generator's Sigmoid keeps it a valid image)."""
        return self.generator(latent_codes(n, self.params["nz"], self.rng, self.ctx.device))

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Real OOD patches -> 1, generated patches -> 0 (``fake`` is detached: D only), scaled
        by ``local`` as in the reference."""
        d = self.discriminator
        return self.params["local"] * 0.5 * (patch_bce(d(real), True) + patch_bce(d(fake.detach()), False))

    def generator_terms(self, fake: torch.Tensor, student: nn.Module) -> dict:
        """``local`` (fool D: generated patches -> 1) + the teacher terms align/balance/adv."""
        terms = {}
        if self.params["local"] > 0:
            terms["local"] = self.params["local"] * patch_bce(self.discriminator(fake), True)
        _, teacher_terms, _ = teacher_objectives(self.ctx.teacher, fake, weights=self.params,
                                                 student=student, adv="kl", balance_base=2.0)
        return terms | teacher_terms

    def refresh(self, step, student):
        p = self.params
        if step % p["synth_every"] != 0:
            return None
        self.generator.train()
        self.discriminator.train()
        student.train()  # as kd_mosaic.py: the student's BN statistics see the G-step images
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
        self.rounds += 1
        return None  # the dictionary stays the one built from the OOD selection (as the paper describes)

    def sample(self, batch_size):
        """Half fresh generator images (not augmented), half selected OOD images (augmented as the
        dataset declares): kd_mosaic.py's student batch."""
        n_syn = batch_size // 2
        with torch.no_grad():
            synthetic = self.generate(n_syn)
        ood = super().sample(batch_size - n_syn)
        if self.ctx.augment is not None:
            ood = self.ctx.augment(ood)
        return torch.cat([synthetic, ood])
