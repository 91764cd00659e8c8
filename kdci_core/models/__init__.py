"""Model zoo: classifier architectures (registry ``MODELS``) and image generators (``GENERATORS``).

Every classifier follows the contract in docs/ARCHITECTURE.md: ``forward(x,
return_features=False)``, attributes ``num_classes``, ``in_channels``, ``feature_dim``, BatchNorm
layers, any input size from 8 px. Importing this package registers all architectures.
``weights``: safe weight-file I/O (safetensors and weights-only state dicts; TorchScript and other
code archives are refused, judged by ``checkpoint_files`` before anything is read);
``evaluation``: logits, accuracy and per-class scores of any classifier; ``sources``: names by
prefix (``tv:NAME``, ``timm:NAME``, bare zoo names) and their checks; ``external``: torchvision
and timm classifiers under the same contract, their state-dict keys the library's own.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from ..common.errors import InputError, check_range
from . import (  # noqa: F401  (registration)
    generators,
    lenet,
    mobilenet,
    resnet,
    vgg,
    wrn,
)
from .base import GENERATORS, MODELS, Classifier
from .evaluation import Evaluation, evaluate, parameter_count, predict_logits
from .external import build_external, layout, library_keys
from .sources import ZOO, arch_choices, check_arch, input_defaults, split_arch
from .weights import MAX_CHECKPOINT_BYTES, read_checkpoint, save_checkpoint

__all__ = [
    "MODELS", "GENERATORS", "Classifier", "build_model", "model_names", "classifier_key",
    "first_conv_key", "check_arch", "arch_choices", "input_defaults", "state_keys",
    "build_generator", "generator_names", "Evaluation", "evaluate", "parameter_count",
    "predict_logits", "MAX_CHECKPOINT_BYTES", "read_checkpoint", "save_checkpoint",
]


def _arch(name):
    """The registered zoo class for the bare name ``name`` (unknown: close matches listed)."""
    return MODELS.get(check_arch(name))


def build_model(name: str, *, num_classes: int, in_channels: int = 3,
                image_size: int | None = None) -> nn.Module:
    """Build architecture ``name`` for ``num_classes`` (>= 2) and ``in_channels`` (>= 1): a zoo
    name, ``tv:NAME`` or ``timm:NAME`` (``models.external``). ``image_size``: the input it will
    take (zoo models take any size from 8 px; a tv/timm model is checked against it, and a
    fixed-size one such as a ViT is built for it)."""
    source, _ = split_arch(check_arch(name))
    num_classes = check_range("num_classes", num_classes, low=2, integer=True)
    in_channels = check_range("in_channels", in_channels, low=1, integer=True)
    if image_size is not None:
        image_size = check_range("image_size", image_size, low=1, integer=True)
    if source == ZOO:
        return MODELS.get(name)(num_classes=num_classes, in_channels=in_channels)
    return build_external(name, num_classes=num_classes, in_channels=in_channels,
                          image_size=image_size)


def model_names() -> list[str]:
    """The zoo's architecture names, sorted (``arch_choices()``: every source's)."""
    return MODELS.names()


def classifier_key(name: str) -> str:
    """State-dict prefix of the final Linear (``f"{key}.weight"`` is num_classes x feature_dim)."""
    if split_arch(check_arch(name))[0] == ZOO:
        return _arch(name).classifier_key
    return layout(name).classifier


def first_conv_key(name: str) -> str | None:
    """State-dict key of the first conv weight (out x in_channels x k x k); None for a tv/timm
    model without a convolution."""
    if split_arch(check_arch(name))[0] == ZOO:
        return _arch(name).first_conv_key
    return layout(name).first_conv_key


@lru_cache(maxsize=None)
def state_keys(name: str) -> frozenset:
    """The state-dict keys of architecture ``name`` (any class or channel count), read from a
    model on the meta device (cached for tv:/timm:, cheap for the zoo)."""
    if split_arch(check_arch(name))[0] != ZOO:
        return library_keys(name)
    with torch.device("meta"):
        return frozenset(_arch(name)(num_classes=10, in_channels=3).state_dict())


def generator_names() -> list[str]:
    """Registered generator names, sorted."""
    return GENERATORS.names()


def build_generator(*, nz: int = 256, img_size: int, nc: int, ngf: int = 64,
                    name: str = "dcgan", output: str = "bn", mean=None, std=None) -> nn.Module:
    """Build generator ``name`` (default DCGAN) producing ``nc x img_size x img_size`` images in
    normalised space; ``output``: the head (see ``models.generators``; ``sigmoid`` needs the
    dataset's ``mean`` and ``std``)."""
    if not isinstance(name, str):
        raise InputError(f"generator: expected a name (string), found {name!r}")
    cls = GENERATORS.get(name)
    nz = check_range("nz", nz, low=1, integer=True)
    img_size = check_range("img_size", img_size, low=4, integer=True)
    nc = check_range("nc", nc, low=1, integer=True)
    ngf = check_range("ngf", ngf, low=1, integer=True)
    return cls(nz=nz, img_size=img_size, nc=nc, ngf=ngf, output=output, mean=mean, std=std)
