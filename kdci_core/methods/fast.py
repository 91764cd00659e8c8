"""Fast (Fang et al., AAAI 2022, "Up to 100x Faster Data-free Knowledge Distillation"), as
Fast-Datafree's ``FastMetaSynthesizer`` computes it.

DeepInversion is slow because every batch starts from noise. Fast keeps a *meta-generator*
whose weights are a good common starting point (shared features), so each round needs only a
few steps: clone the meta-generator, draw fresh latent codes z (learnable too), and optimise
clone and z jointly for ``g_steps`` on the teacher's view of a random crop + flip of G(z):
``bn`` * BatchNorm statistics (blended with the previous rounds' by ``bn_mmt``) + ``oh`` *
cross-entropy to sampled targets + ``adv`` * (- KL(teacher || raw student) at T=1 on the samples
where both agree). The lowest-loss batch of the round (G(z) before the crop) goes to the pool.
Then the meta-generator moves, with its own Adam (learning rate lr_g * g_steps):
- ``maml`` (first-order MAML, the reference scripts' --is_maml 1): the clone's gradients summed
  over every inner step, one meta step;
- ``reptile``: one meta step on ``reptile_scale`` * (meta - clone) (the reference's Reptile).
``warmup`` rounds run before distillation, without the adversarial term (no student yet);
``reset_l0`` re-initialises the meta-generator's first Linear and BatchNorm once, at that
round after the warm-up (the reference scripts' --reset_l0 1, at epoch 120 + warmup).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..common.progress import report
from ..data.augment import CropFlip
from .losses import bn_statistics
from .registry import METHODS
from .synthesis import GeneratorMethod, teacher_objectives

G_STEPS = (2, 5, 10)
META_RULES = ("reptile", "maml")
_DF = "Fast-Datafree scripts/fast_cifar.sh"


@METHODS.register("fast")
class Fast(GeneratorMethod):
    default_k = 8  # KDCI's K for "the synthetic mini-batch from GANs [31, 29]" (section 4.3); [29] is Fast
    default_tau = 20.0
    #: BN-statistics matching (hooks on the teacher) and a generator trained through it
    teacher_needs = frozenset({"logits", "batchnorm", "gradients"})
    student_defaults = {"lr": 0.2, "weight_decay": 1e-4}  # fast_cifar.sh (--lr 0.2), datafree_kd.py
    student_source = ('Fast-Datafree scripts/fast_cifar.sh (--lr 0.2) and datafree_kd.py (weight decay 1e-4; cosine over the 200 epochs after warm-up, eta_min 2e-4; 0 here); quick: lr 0.01')
    loop_source = ('Fast-Datafree scripts/fast_cifar.sh: batch 256, 200 epochs of kd_steps=400 after 20 warm-up epochs; quick: CPU-sized')
    defaults = {
        "synth_batch": 64, "g_steps": 10, "synth_every": 10, "warmup": 5, "pool_size": 10_000,
        "nz": 256, "ngf": 64, "lr_g": 2e-3, "lr_z": 0.01, "meta": "maml", "reptile_scale": 67.0,
        "bn": 10.0, "oh": 0.4, "adv": 1.1, "bn_mmt": 0.9, "reset_l0": 0,
    }
    paper_params = {"synth_batch": 256, "synth_every": 400, "warmup": 20, "pool_size": 56_320,
                    "reset_l0": 120}
    sources = {
        "synth_batch": f"{_DF} synthesises 256 per round (paper preset); 64 here (>= K)",
        "g_steps": f"{_DF} runs Fast-2/5/10 (--g_steps 2, 5, 10); Fast-10 here",
        "synth_every": f"{_DF}: one round per kd_steps=400 student steps (paper preset); 10 here "
                       "(a quick run has 500 student steps: 50 rounds)",
        "warmup": f"{_DF} --warmup 20 (rounds of synthesis only, adv off; paper preset); 5 here "
                  "(~10% of the 50 rounds of a quick run)",
        "pool_size": "Fast-Datafree keeps every image (paper preset: 220 rounds x 256); a ring buffer here",
        "nz": "Fast-Datafree datafree_kd.py (Generator nz=256)",
        "ngf": "Fast-Datafree datafree_kd.py (Generator ngf=64)",
        "lr_g": f"{_DF} (--lr_g 2e-3 for g_steps 10; 3e-3 for 5, 5e-3 for 2), Adam betas 0.5/0.999",
        "lr_z": f"{_DF} (--lr_z 0.01 for g_steps 5 and 10; 0.015 for 2)",
        "meta": f"{_DF} (--is_maml 1: first-order MAML); reptile the reference's alternative",
        "reptile_scale": "Fast-Datafree fast_meta.py (reptile_grad: alpha=67)",
        "bn": f"{_DF} (--bn 10)",
        "oh": f"{_DF} wrn40_2 lines (--oh 0.4; 0.5 for resnet34 and vgg11)",
        "adv": f"{_DF} wrn40_2 lines (--adv 1.1; 1.33 resnet34, 1.0 vgg11), on the agreement-masked KL",
        "bn_mmt": f"{_DF} (--bn_mmt 0.9)",
        "reset_l0": f"{_DF} --reset_l0 1: at epoch 120 + warmup (paper preset: round 120); 0 = never "
                    "here (a quick run has 50 rounds)",
    }

    choices = {"g_steps": G_STEPS, "meta": META_RULES}
    ranges = {"bn_mmt": (0.0, 0.999), "warmup": (0, 100_000), "reset_l0": (0, 10_000_000),
              "reptile_scale": (0.0, 1e6)}

    def __init__(self, ctx):
        super().__init__(ctx)
        for group in self.g_optimizer.param_groups:  # the meta-optimiser
            group["lr"] = self.params["lr_g"] * self.params["g_steps"]
        self.bn_state: list | None = None  # BN-momentum state carried from round to round
        self.augment = CropFlip(ctx.info, self.rng, flip=ctx.info.in_channels == 3)

    def prepare(self):
        """Warm-up rounds: train the meta-generator and fill the pool before distillation."""
        for r in range(self.params["warmup"]):
            self.pool.add(self.synthesize(None))
            report(self.ctx.progress, r + 1, self.params["warmup"], "fast warm-up rounds")

    def synthesize(self, student):
        ctx, p = self.ctx, self.params
        if student is not None and p["reset_l0"] and self.rounds + 1 == p["reset_l0"]:
            self.reset_first_layers()
        n, fast_g = p["synth_batch"], copy.deepcopy(self.generator)
        z = self.latent(n).requires_grad_(True)
        targets = self.targets(n)
        opt = torch.optim.Adam([{"params": fast_g.parameters()}, {"params": [z], "lr": p["lr_z"]}],
                               lr=p["lr_g"], betas=(0.5, 0.999))
        maml = p["meta"] == "maml"
        if maml:
            self.g_optimizer.zero_grad(set_to_none=True)
        best, best_loss = None, float("inf")
        with bn_statistics(ctx.teacher, momentum=p["bn_mmt"], previous=self.bn_state) as hooks:
            for it in range(p["g_steps"]):
                x = fast_g(z)
                loss, _, _ = teacher_objectives(ctx.teacher, self.augment(x), weights=p, hooks=hooks,
                                                targets=targets, student=student, adv="masked-kl")
                if loss.item() < best_loss:  # the reference keeps the lowest-loss batch
                    best, best_loss = x.detach(), loss.item()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if maml:
                    self.accumulate_meta_gradient(fast_g)
                opt.step()
                report(ctx.progress, it + 1, p["g_steps"], f"fast synthesis (round {self.rounds + 1})")
            for h in hooks:
                h.update_momentum()
            self.bn_state = [h.previous for h in hooks]
        self.meta_update(fast_g)
        return best

    def accumulate_meta_gradient(self, fast_g: nn.Module) -> None:
        """First-order MAML: add the clone's gradient at this inner step to the meta-gradient."""
        for meta, fast in zip(self.generator.parameters(), fast_g.parameters()):
            if fast.grad is not None:
                meta.grad = fast.grad.detach().clone() if meta.grad is None else meta.grad + fast.grad

    def meta_update(self, fast_g: nn.Module) -> None:
        """One step of the meta-optimiser: on the summed clone gradients (maml), or on
        ``reptile_scale`` * (meta - clone) (reptile)."""
        if self.params["meta"] == "reptile":
            self.g_optimizer.zero_grad(set_to_none=True)
            for meta, fast in zip(self.generator.parameters(), fast_g.parameters()):
                meta.grad = (meta.detach() - fast.detach()) * self.params["reptile_scale"]
        self.g_optimizer.step()
        self.g_optimizer.zero_grad(set_to_none=True)

    def reset_first_layers(self) -> None:
        """The reference's reset_l0: the first Linear and BatchNorm weights N(0, 0.02), biases 0."""
        with torch.no_grad():
            for m in (self.generator.l1, self.generator.conv_blocks0):
                m.weight.copy_(torch.randn(m.weight.shape, generator=self.rng) * 0.02)
                m.bias.zero_()
