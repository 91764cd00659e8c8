"""Model zoo: classifier architectures (registry ``MODELS``) and image generators (``GENERATORS``).

Every classifier follows the contract in docs/ARCHITECTURE.md: ``forward(x,
return_features=False)``, attributes ``num_classes``, ``in_channels``, ``feature_dim``, BatchNorm
layers, any input size from 8 px. Importing this package registers all architectures.
``weights``: safe weight-file I/O (safetensors and weights-only state dicts; TorchScript and other
code archives are refused, judged by ``checkpoint_files`` before anything is read);
``evaluation``: logits, accuracy and per-class scores of any classifier.
"""

from __future__ import annotations

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
from .weights import MAX_CHECKPOINT_BYTES, read_checkpoint, save_checkpoint

__all__ = [
    "MODELS", "GENERATORS", "Classifier", "build_model", "model_names", "classifier_key",
    "first_conv_key", "build_generator", "generator_names", "Evaluation", "evaluate",
    "parameter_count", "predict_logits", "MAX_CHECKPOINT_BYTES", "read_checkpoint", "save_checkpoint",
]


def _arch(name):
    """The registered class for ``name``; non-string names are an InputError too."""
    if not isinstance(name, str):
        raise InputError(f"architecture: expected a name (string), found {name!r}")
    return MODELS.get(name)


def build_model(name: str, *, num_classes: int, in_channels: int = 3) -> nn.Module:
    """Build architecture ``name`` for ``num_classes`` (>= 2) and ``in_channels`` (>= 1)."""
    cls = _arch(name)
    num_classes = check_range("num_classes", num_classes, low=2, integer=True)
    in_channels = check_range("in_channels", in_channels, low=1, integer=True)
    return cls(num_classes=num_classes, in_channels=in_channels)


def model_names() -> list[str]:
    """Registered architecture names, sorted."""
    return MODELS.names()


def classifier_key(name: str) -> str:
    """State-dict prefix of the final Linear (``f"{key}.weight"`` is num_classes x feature_dim)."""
    return _arch(name).classifier_key


def first_conv_key(name: str) -> str:
    """State-dict key of the first conv weight (out x in_channels x k x k)."""
    return _arch(name).first_conv_key


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
