"""CMI (Fang et al., IJCAI 2021, "Contrastive Model Inversion for Data-Free Knowledge
Distillation"), as DataFree's ``CMISynthesizer`` computes it.

Every ``synth_every`` student steps the generator is *re-initialised* (DataFree's reset_model:
N(0, 0.02) weights, BatchNorm weights N(1, 0.02)) and optimised with fresh latent codes for
``g_steps`` (so each round starts from a new mode instead of refining the last one). Loss per
step, on images x = G(z) seen through two random views:
- the DeepInversion terms of ``teacher_objectives`` on the global view (random crop with 1/8
  padding [+ flip]): ``bn`` x BN-statistics distance + ``oh`` x CE to sampled targets + ``adv``
  x (- KL(teacher || raw student) at T=1 on the samples where both agree);
- ``cr`` x InfoNCE (temperature ``cr_t``): the instance means of every teacher BatchNorm input,
  concatenated, of the local view (random resized crop [+ flip]) are projected by an MLP head
  (trained with the generator, kept across rounds) and must pick out the (detached) projection
  of their own global view among the batch's other images and ``n_neg`` features of a memory
  bank of past synthetic samples. This rewards instances unlike anything synthesised before.
The best iterate of a round (lowest loss) is returned (KDCI rebuilds from it) and pooled.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..common.progress import report
from ..data.augment import CropFlip
from .losses import bn_features, bn_statistics
from .registry import METHODS
from .synthesis import GeneratorMethod, reset_generator, teacher_objectives


def info_nce(anchors: torch.Tensor, positives: torch.Tensor, temperature: float,
             n_batch: int) -> torch.Tensor:
    """InfoNCE over L2-normalised rows: row i's positive is ``positives[i]``, every other row (the
    batch's other images, then the bank) a negative. Batch rows (the first ``n_batch``) and bank
    rows are averaged separately and summed (DataFree's CMI), so a big bank cannot drown the batch."""
    logits = anchors @ positives.t() / temperature
    ce = F.cross_entropy(logits, torch.arange(len(logits), device=logits.device), reduction="none")
    return ce[:n_batch].mean() + (ce[n_batch:].mean() if len(ce) > n_batch else 0.0)


def crop_boxes(n: int, height: int, width: int, gen: torch.Generator, *, scale=(0.08, 1.0),
               ratio=(3 / 4, 4 / 3), attempts: int = 10) -> tuple[torch.Tensor, ...]:
    """Crop boxes ``(x0, y0, w, h)`` in whole pixels, sampled as kornia's ``RandomResizedCrop``
    samples them (DataFree's CMI local view): per image ``attempts`` candidates, the area uniform
    in ``scale`` x H x W and the aspect log-uniform in ``ratio``, w and h rounded to whole
    pixels; the first candidate that fits is taken, else the whole image; the corner uniform over
    the positions where the crop fits."""
    u = torch.rand(n, attempts, generator=gen)
    area = (scale[0] + (scale[1] - scale[0]) * u) * height * width
    log_ratio = torch.empty(n, attempts).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=gen)
    w = (area * log_ratio.exp()).sqrt().round()
    h = (area / log_ratio.exp()).sqrt().round()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = ((fits.int().cumsum(1) == 1) & fits).int().argmax(1)
    rows = torch.arange(n)
    w = torch.where(fits.any(1), w[rows, first], float(width))
    h = torch.where(fits.any(1), h[rows, first], float(height))
    x0 = (torch.rand(n, generator=gen) * (width - w + 1)).floor()
    y0 = (torch.rand(n, generator=gen) * (height - h + 1)).floor()
    return x0, y0, w, h


def random_view(x: torch.Tensor, gen: torch.Generator, *, scale=(1.0, 1.0), flip: bool = False) -> torch.Tensor:
    """Differentiable per-sample random resized crop (:func:`crop_boxes`), optional horizontal
    flip, resampled bilinearly to the input size (the crop's corner pixels onto the output's, as
    kornia's crop-and-resize maps them)."""
    n, _, height, width = x.shape
    x0, y0, w, h = crop_boxes(n, height, width, gen, scale=scale)
    sx, sy = (w - 1) / max(width - 1, 1), (h - 1) / max(height - 1, 1)
    tx, ty = (2 * x0 + w - 1) / max(width - 1, 1) - 1, (2 * y0 + h - 1) / max(height - 1, 1) - 1
    if flip:
        sx = sx * torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    zero = torch.zeros(n)
    theta = torch.stack([torch.stack([sx, zero, tx], 1), torch.stack([zero, sy, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


_DF = "DataFree scripts/cmi/cmi_cifar10.sh"


@METHODS.register("cmi")
class CMI(GeneratorMethod):
    default_k = 32  # KDCI's K for a model-inversion mini-batch (KDCI paper, section 4.3)
    default_tau = 20.0
    #: BN statistics and BN inputs (its contrastive features), a generator trained through it
    teacher_needs = frozenset({"logits", "batchnorm", "gradients"})
    defaults = {
        "synth_batch": 64, "g_steps": 40, "lr_g": 0.001, "synth_every": 25, "pool_size": 10_000,
        "nz": 256, "ngf": 32, "bn": 1.0, "oh": 1.0, "adv": 0.5, "cr": 0.8, "cr_t": 0.2,
        "head_dim": 256, "bank_size": 4096, "n_neg": 4096, "crop_scale": 0.25,
    }
    paper_params = {"synth_batch": 256, "g_steps": 200, "synth_every": 400, "ngf": 64,
                    "bank_size": 40960, "pool_size": 51_200}
    sources = {
        "synth_batch": f"{_DF} uses 256 (paper preset); 64 here (>= the K default of 32)",
        "g_steps": f"{_DF} uses 200 (paper preset); 40 here to fit the CPU budget",
        "lr_g": f"{_DF} (--lr_g 1e-3: generator and latents, Adam betas 0.5/0.999; the head's Adam)",
        "synth_every": f"{_DF}: one round per kd_steps=400 student steps (paper preset); 25 here",
        "pool_size": "DataFree keeps every image (paper preset: 200 rounds x 256); a ring buffer here",
        "nz": "DataFree datafree_kd.py (Generator nz=256)",
        "ngf": "DataFree uses 64 (paper preset); 32 here (small inputs, CPU: the generator dominates)",
        "bn": f"{_DF} (--bn 1)", "adv": f"{_DF} (--adv 0.5), on the agreement-masked KL",
        "oh": f"{_DF} (--oh 1; the adv-CMI scripts use 0.5)",
        "cr": f"{_DF} (--cr 0.8)",
        "cr_t": f"{_DF} (--cr_T 0.2; the scratch and adv-CMI scripts use 0.1)",
        "head_dim": "DataFree datafree_kd.py (head_dim=256; 2-layer MLP, hidden = input width)",
        "bank_size": "DataFree 40960 (paper preset); 4096 here (more than a quick run synthesises)",
        "n_neg": "DataFree (n_neg=4096 bank features sampled per step)",
        "crop_scale": "DataFree local view (RandomResizedCrop scale [0.25, 1])",
    }

    ranges = {"cr_t": (1e-4, 100.0), "crop_scale": (1e-3, 1.0)}

    def __init__(self, ctx):
        super().__init__(ctx)
        dim = sum(m.num_features for m in ctx.teacher.modules() if isinstance(m, nn.BatchNorm2d))
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(),
                                  nn.Linear(dim, self.params["head_dim"])).to(ctx.device)
        self.head_optimizer = torch.optim.Adam(self.head.parameters(), lr=self.params["lr_g"])
        self.bank = torch.zeros(0, 2 * dim, device=ctx.device)  # rows: [local | global] features
        self.global_view = CropFlip(ctx.info, self.rng, flip=ctx.info.in_channels == 3)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(features), dim=1)

    def negatives(self) -> torch.Tensor:
        """Up to ``n_neg`` bank rows, drawn without replacement when the bank holds more."""
        if len(self.bank) <= self.params["n_neg"]:
            return self.bank
        idx = torch.randperm(len(self.bank), generator=self.rng)[:self.params["n_neg"]]
        return self.bank[idx.to(self.bank.device)]

    def contrastive(self, f_global: torch.Tensor, f_local: torch.Tensor) -> torch.Tensor:
        """Local views are anchors, the detached global views their positives (as in DataFree)."""
        bank_local, bank_global = self.negatives().chunk(2, dim=1)
        anchors = self.project(torch.cat([f_local, bank_local]))
        positives = self.project(torch.cat([f_global, bank_global])).detach()
        return info_nce(anchors, positives, self.params["cr_t"], len(f_local))

    def remember(self, features: torch.Tensor) -> None:
        """Push detached features into the FIFO memory bank (oldest dropped past ``bank_size``)."""
        self.bank = torch.cat([self.bank, features.detach()])[-self.params["bank_size"]:] \
            if self.params["bank_size"] else self.bank

    def objective(self, x, targets, hooks, student):
        """All synthesis terms for images x; returns (total, weighted terms, [local|global] features)."""
        p, flip = self.params, self.ctx.info.in_channels == 3
        total, terms, _ = teacher_objectives(self.ctx.teacher, self.global_view(x), weights=p,
                                             hooks=hooks, targets=targets, student=student,
                                             adv="masked-kl")
        f_global = bn_features(hooks)
        self.ctx.teacher(random_view(x, self.rng, scale=(p["crop_scale"], 1.0), flip=flip))
        f_local = bn_features(hooks)  # the hooks now hold the local view's BN inputs
        if p["cr"] > 0:
            terms["cr"] = p["cr"] * self.contrastive(f_global, f_local)
            total = total + terms["cr"]
        return total, terms, torch.cat([f_local, f_global], 1).detach()

    def synthesize(self, student):
        p, n = self.params, self.params["synth_batch"]
        reset_generator(self.generator, self.rng)  # CMI: a re-initialised generator every round
        z = self.latent(n).requires_grad_(True)
        targets = self.targets(n)
        opt = torch.optim.Adam([{"params": self.generator.parameters()}, {"params": [z]}],
                               lr=p["lr_g"], betas=(0.5, 0.999))
        best_loss, best, best_features = math.inf, None, None
        with bn_statistics(self.ctx.teacher, instance_means=True) as hooks:
            for it in range(p["g_steps"]):
                x = self.generator(z)
                loss, _, features = self.objective(x, targets, hooks, student)
                if loss.item() < best_loss or best is None:
                    best_loss, best, best_features = loss.item(), x.detach(), features
                opt.zero_grad(set_to_none=True)
                self.head_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                self.head_optimizer.step()
                report(self.ctx.progress, it + 1, p["g_steps"], f"cmi synthesis (round {self.rounds + 1})")
        self.remember(best_features)
        return best
