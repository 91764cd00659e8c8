"""Plain KD on unlabeled data (``plain``): the student learns the teacher's outputs on a fixed
pool, with no selection and no extra loss. The baseline under every sampling method, and the one
for experiments where we set the shift ourselves: with ``--wild-data dataset:NAME``, ``imbalance``
subsamples that dataset's train split long-tailed by its true labels, and ``blur``/``noise``
degrade its images (``data.shift``), so the confounder is known."""

from __future__ import annotations

from ..common.errors import InputError
from ..data import load_dataset, load_wild_pool
from ..data.shift import degrade, long_tailed_indices
from ..data.wild import DATASET_PREFIX
from .base import SamplingMethod
from .registry import METHODS


@METHODS.register("plain")
class PlainKD(SamplingMethod):
    default_k = 128  # KDCI's K for sampled unlabeled data (KDCI paper, section 4.3)
    default_tau = 4.0  # the common KD temperature (Hinton et al.; DFND's T)
    teacher_needs = frozenset({"logits"})  # only the teacher's outputs (a black box will do)
    defaults = {"pool_size": 20_000, "n_select": 20_000, "imbalance": 1.0, "blur": 0.0, "noise": 0.0,
                "balanced": False}
    sources = {
        "pool_size": "chosen here: at most this many images of the wild source",
        "n_select": "all of the pool (plain KD selects nothing; = pool_size, or fewer if the pool has fewer)",
        "imbalance": "controlled shift: largest / smallest class of a dataset:NAME source (1: none)",
        "blur": "controlled shift: Gaussian blur std in pixels (0: none)",
        "noise": "controlled shift: Gaussian noise std in [0, 1] pixel units (0: none)",
        "balanced": "unused by plain KD (no pseudo-label selection); accepted for --correction balanced",
    }
    ranges = {"imbalance": (1.0, 1e6), "blur": (0.0, 32.0), "noise": (0.0, 10.0)}

    def prepare(self):
        ctx, p = self.ctx, self.params
        shifted = p["imbalance"] > 1 or p["blur"] > 0 or p["noise"] > 0
        source = str(ctx.wild_data or "")
        if not shifted:
            pool = load_wild_pool(ctx.wild_data, ctx.info, n=p["pool_size"], seed=ctx.seed, root=ctx.data_root)
        elif source.lower().startswith(DATASET_PREFIX):
            data = load_dataset(source[len(DATASET_PREFIX):].strip(), ctx.data_root,
                                image_size=ctx.info.image_size, in_channels=ctx.info.in_channels)
            keep = long_tailed_indices(data.train.labels, p["imbalance"], ctx.seed)[:p["pool_size"]]
            x01 = degrade(data.info.denormalize(data.train.images[keep].clone()), blur=p["blur"],
                          noise=p["noise"], seed=ctx.seed)
            pool = ctx.info.normalize(x01)
        else:
            raise InputError(f"plain.imbalance/blur/noise: a controlled shift needs --wild-data "
                             f"dataset:NAME (its labels set the long tail), found {source or 'the default photos'}")
        self.selected = pool[:p["n_select"]].to(ctx.device)
