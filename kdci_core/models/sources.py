"""Where an architecture comes from, read off its name: ``tv:NAME`` (a torchvision.models
classifier builder), ``timm:NAME`` (a timm model name) or a bare name (this project's zoo, as
before prefixes existed, so every stored run keeps its meaning).

Names are checked here, before anything is built: an unknown one is an InputError listing the
close matches over all three sources. timm is imported on first use only (it takes a second),
with ``HF_HUB_OFFLINE=1`` set before its import: this product never downloads weights, and
huggingface_hub reads that variable when it is imported.
"""

from __future__ import annotations

import difflib
import os
from functools import lru_cache

from ..common.errors import InputError
from .base import MODELS

ZOO, TV, TIMM = "zoo", "tv", "timm"
#: what each prefix names, for messages and the pages' list
SOURCES = {ZOO: "this project's zoo (a bare name)", TV: "tv:NAME, a torchvision.models classifier",
           TIMM: "timm:NAME, a timm model"}


def timm_module():
    """``timm``, imported offline (nothing in this product may reach the Hugging Face hub)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import timm

    return timm


def split_arch(name) -> tuple[str, str]:
    """``(source, bare name)`` of an architecture name; a prefix other than tv:/timm: is refused."""
    if not isinstance(name, str):
        raise InputError(f"architecture: expected a name (string), found {name!r}")
    if ":" not in name:
        return ZOO, name
    prefix, bare = name.split(":", 1)
    if prefix not in (TV, TIMM):
        raise InputError(f"architecture {name!r}: expected a bare zoo name, tv:NAME or timm:NAME, "
                         f"found the prefix {prefix + ':'!r}")
    return prefix, bare


@lru_cache(maxsize=1)
def tv_names() -> tuple[str, ...]:
    """torchvision's classification builders (not detection, segmentation, video...)."""
    import torchvision

    return tuple(sorted(torchvision.models.list_models(module=torchvision.models)))


@lru_cache(maxsize=1)
def timm_names() -> tuple[str, ...]:
    """timm's architecture names (without pretrained tags; ``timm:resnet18.a1_in1k`` is accepted
    too, its tag only choosing the default input size and normalisation)."""
    return tuple(sorted(timm_module().list_models()))


def is_known(name) -> bool:
    """True when ``name`` names an architecture of one of the three sources (nothing built)."""
    try:
        source, bare = split_arch(name)
    except InputError:
        return False
    if source == ZOO:
        return bare in MODELS
    if source == TV:
        return bare in tv_names()
    return ":" not in bare and timm_module().is_model(bare)  # never hf-hub:/local-dir: names


def arch_choices() -> dict[str, list[str]]:
    """Every accepted name by source (``zoo``, ``tv``, ``timm``), each list sorted and written as
    a user types it (``tv:resnet18``): the pages' searchable list."""
    return {ZOO: MODELS.names(), TV: [f"{TV}:{n}" for n in tv_names()],
            TIMM: [f"{TIMM}:{n}" for n in timm_names()]}


def close_matches(name: str, n: int = 5) -> list[str]:
    """The accepted names closest to ``name`` (difflib), over the zoo, tv: and timm:."""
    pool = [x for names in arch_choices().values() for x in names]
    return difflib.get_close_matches(name, pool, n=n, cutoff=0.6)


def check_arch(name, field: str = "architecture") -> str:
    """``name`` if it is an accepted architecture name, else an InputError naming ``field``, the
    close matches and the three sources."""
    if is_known(name):
        return name
    if not isinstance(name, str):
        raise InputError(f"{field}: expected an architecture name (string), found {name!r}")
    matches = close_matches(name)
    near = f"; close matches: {', '.join(matches)}" if matches else ""
    raise InputError(f"{field}: unknown architecture {name!r}{near}; expected a zoo name "
                     f"({', '.join(MODELS.names())}), tv:NAME (any torchvision classifier) or "
                     "timm:NAME (any timm model)")


def input_defaults(name: str) -> dict | None:
    """The input a timm architecture was designed for: ``input_size`` (C, H, W), ``mean``,
    ``std``, ``fixed_input_size`` (from its pretrained_cfg; no weights are read); None for the
    zoo and torchvision, which take any size and the dataset's normalisation."""
    source, bare = split_arch(check_arch(name))
    if source != TIMM:
        return None
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(bare)
    if cfg is None:
        return None
    return {"input_size": tuple(cfg.input_size), "mean": tuple(cfg.mean), "std": tuple(cfg.std),
            "fixed_input_size": bool(cfg.fixed_input_size)}
