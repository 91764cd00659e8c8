"""What a DFKD method is: a source of substitution data plus its own loss terms.

The distillation loop (``kdci_core.distill``) owns the student, the optimiser, the KD loss, KDCI
and evaluation. A method supplies only:
- ``prepare()``: one-off work before distillation (sampling methods select their data here);
- ``refresh(step, student)``: generation methods make a new synthetic mini-batch every
  ``synth_every`` steps and return it (the loop rebuilds KDCI's dictionary from it);
- ``sample(batch_size)``: the images for one student step;
- ``student_losses(x, s_hat, t)``: extra terms on the (KDCI-compensated) student logits;
- ``student_modules()``: extra trainable modules updated by the student's optimiser.
``s_hat`` handed to ``student_losses`` is KDCI-compensated by the loop (the one place KDCI acts);
the ``student`` handed to ``refresh`` is the raw student (in eval mode) for synthesis-side terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..common.errors import InputError, check_range
from ..common.progress import Progress
from ..data import DatasetInfo


#: the bounds of a numeric parameter without its own ``ranges`` entry, by its declared type (the
#: type of its default: ``distill.params`` reads ``--param`` values by it)
TYPE_RANGES = {int: (1, 10_000_000), float: (0.0, 1e6)}


@dataclass
class MethodContext:
    teacher: nn.Module
    info: DatasetInfo
    device: torch.device
    seed: int
    tau: float
    wild_data: str | None = None
    data_root: str | None = None
    progress: Progress = None
    params: dict = field(default_factory=dict)
    #: the teacher's test accuracy (percent), for methods whose reference uses it (DFND)
    teacher_accuracy: float | None = None
    #: the student-side augmentation of the run (None: none), for methods that apply it to part
    #: of their batch themselves (``augments_itself``)
    augment: object = None


class DFKDMethod:
    """Base class; subclasses set ``kind``, ``default_k``, ``default_tau``, ``defaults`` (``name`` is
    set by ``METHODS.register``)."""

    name: str = ""
    kind: str = ""            # "generation" or "sampling"
    default_k: int = 32
    default_tau: float = 4.0
    defaults: dict = {}
    sources: dict = {}        # hyperparameter -> where the default comes from (docs table)
    #: the reference's student optimiser (SGD, momentum 0.9, cosine): the paper preset uses both,
    #: the quick preset its weight decay (presets.py)
    student_defaults: dict = {"lr": 0.1, "weight_decay": 1e-4}
    student_source: str = ("DataFree/Fast-Datafree datafree_kd.py (SGD lr 0.1, momentum 0.9, weight "
                           "decay 1e-4, cosine); quick: lr 0.01 (presets.py)")
    loop_source: str = ("DataFree datafree_kd.py scripts: batch 256, 200 epochs of kd_steps=400; "
                        "quick: CPU-sized")
    #: the reference scripts' CIFAR values of this method's parameters (the paper preset)
    paper_params: dict = {}
    #: where the reference's loop differs from the presets' common paper loop (presets.py)
    paper_loop: dict = {}
    #: True when ``sample`` applies the run's augmentation (``ctx.augment``) itself, to part of
    #: its batch as its reference does; otherwise the loop augments the whole batch
    augments_itself: bool = False
    ranges: dict = {}         # hyperparameter -> (low, high) when not the default bounds
    choices: dict = {}        # hyperparameter -> allowed values (strings, or a set of numbers)
    #: what the method needs from its teacher (``methods.needs``): "logits" (its outputs),
    #: "features" (penultimate), "batchnorm" (running statistics), "gradients" (through it);
    #: undeclared, all of them (a method must say it needs less before a black box runs it)
    teacher_needs: frozenset = frozenset({"logits", "features", "batchnorm", "gradients"})

    def __init__(self, ctx: MethodContext):
        self.ctx = ctx
        self.params = self.resolve_params(ctx.params)
        self.rng = torch.Generator(device="cpu").manual_seed(ctx.seed + 7919)

    @classmethod
    def resolve_params(cls, overrides: dict) -> dict:
        """Defaults + overrides, validated: unknown keys, wrong types, values outside ``ranges``
        (ints default to >= 1, floats to >= 0) or not among ``choices`` are InputErrors."""
        unknown = sorted(set(overrides) - set(cls.defaults))
        if unknown:
            raise InputError(f"{cls.name} parameters: unknown {', '.join(unknown)}; expected some of "
                             f"{', '.join(sorted(cls.defaults))}")
        params = {**cls.defaults, **overrides}
        ranges, choices = cls._merged("ranges"), cls._merged("choices")
        for key, default in cls.defaults.items():
            name, value = f"{cls.name}.{key}", params[key]
            if key in choices:
                if value not in choices[key] or type(value) is not type(default):
                    raise InputError(f"{name}: expected one of {', '.join(map(str, choices[key]))}, "
                                     f"found {value!r}")
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    raise InputError(f"{name}: expected true/false, found {value!r}")
            elif isinstance(default, int):
                low, high = ranges.get(key, TYPE_RANGES[int])
                params[key] = check_range(name, value, low=low, high=high, integer=True)
            elif isinstance(default, float):
                low, high = ranges.get(key, TYPE_RANGES[float])
                params[key] = float(check_range(name, value, low=low, high=high))
        return params

    @classmethod
    def _merged(cls, attr: str) -> dict:
        """``ranges``/``choices`` declared along the class hierarchy, subclasses winning."""
        out = {}
        for klass in reversed(cls.__mro__):
            out.update(vars(klass).get(attr, {}))
        return out

    # --- the hooks the loop calls ---------------------------------------------------------
    def prepare(self) -> None:
        """One-off work before the first student step."""

    def refresh(self, step: int, student: nn.Module):
        """New substitution data to (re)build the dictionary from, or None."""
        return None

    def sample(self, batch_size: int) -> torch.Tensor:
        raise NotImplementedError

    def student_losses(self, x: torch.Tensor, s_hat: torch.Tensor, t: torch.Tensor,
                       weights: torch.Tensor | None = None) -> dict:
        """Extra terms on the compensated student logits; ``weights``: per-sample weights (mean 1)
        of a ``reweight`` correction, to apply as the KD loss does."""
        return {}

    def student_modules(self) -> list[nn.Module]:
        """Extra trainable modules the student's optimiser updates (at the student's settings)."""
        return []

    def student_optimizers(self) -> list[torch.optim.Optimizer]:
        """Optimisers of extra modules trained with the student loss under their own settings
        (the reference's): the loop zeroes and steps them with the student's."""
        return []

    def substitution_data(self) -> torch.Tensor:
        """All substitution data made so far (for diagnostics and the dictionary)."""
        raise NotImplementedError

    def min_dictionary_samples(self) -> int:
        """How many samples each dictionary is built from (K must not exceed it)."""
        raise NotImplementedError

    def _randint(self, high: int, n: int) -> torch.Tensor:
        return torch.randint(0, high, (n,), generator=self.rng)


def clip_images(x: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    """Keep images inside the normalised range of a valid [0, 1] image."""
    mean = torch.tensor(info.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(info.std, device=x.device).view(1, -1, 1, 1)
    return torch.max(torch.min(x, (1 - mean) / std), -mean / std)


class SyntheticPool:
    """In-memory ring buffer of synthetic images (tensors on the run's device; no PNG files)."""

    def __init__(self, capacity: int):
        self.capacity = max(1, capacity)
        self.data: torch.Tensor | None = None

    def add(self, x: torch.Tensor) -> None:
        x = x.detach()
        self.data = x if self.data is None else torch.cat([self.data, x])[-self.capacity:]

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        idx = torch.randint(0, len(self.data), (n,), generator=gen)
        return self.data[idx.to(self.data.device)]

    def __len__(self) -> int:
        return 0 if self.data is None else len(self.data)


class GenerationMethod(DFKDMethod):
    """Synthesises a mini-batch every ``synth_every`` student steps into a pool it samples from."""

    kind = "generation"
    ranges = {"synth_batch": (2, 1_000_000), "lr_g": (1e-8, 10.0)}

    def __init__(self, ctx: MethodContext):
        super().__init__(ctx)
        self.pool = SyntheticPool(self.pool_capacity())
        self.rounds = 0

    def pool_capacity(self) -> int:
        """How many synthetic images the student samples from (default: ``pool_size``)."""
        return self.params["pool_size"]

    def refresh(self, step, student):
        if step % self.params["synth_every"] != 0:
            return None
        batch = self.synthesize(student)
        self.pool.add(batch)
        self.rounds += 1
        return batch

    def synthesize(self, student: nn.Module) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, batch_size):
        return self.pool.sample(batch_size, self.rng)

    def substitution_data(self):
        return self.pool.data

    def min_dictionary_samples(self):
        return self.params["synth_batch"]

    def clip(self, x: torch.Tensor) -> torch.Tensor:
        return clip_images(x, self.ctx.info)


class SamplingMethod(DFKDMethod):
    """Selects substitution data once from an unlabeled pool; the selection stays fixed."""

    kind = "sampling"

    def __init__(self, ctx: MethodContext):
        super().__init__(ctx)
        self.selected: torch.Tensor | None = None

    def sample(self, batch_size):
        idx = torch.randint(0, len(self.selected), (batch_size,), generator=self.rng)
        return self.selected[idx.to(self.selected.device)]

    def substitution_data(self):
        return self.selected

    def min_dictionary_samples(self):
        return self.params["n_select"]
