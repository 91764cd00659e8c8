"""Which architectures a state dict belongs to, when the user named none or named the wrong one.

timm alone has over a thousand names, so the search runs over a bounded list of common
classifiers (``CANDIDATES``: the zoo, then torchvision, then timm). Each candidate's keys are
read once per process from a model built on PyTorch's ``meta`` device (no memory, no weights);
only a candidate with exactly the file's keys is built again with the file's class count and
input channels to compare every shape. Several names can match one file: timm's ``resnet18``
has torchvision's keys and shapes (and computes the same function), so both are named.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from ..common.errors import InputError
from ..models import build_model, classifier_key, first_conv_key, model_names, state_keys

#: torchvision classifiers searched (ViTs and Swin are left out: a ViT's position embedding
#: depends on the input size it was trained at, which a state dict does not say)
TV_CANDIDATES = ("resnet18", "resnet34", "resnet50", "resnet101", "wide_resnet50_2",
                 "resnext50_32x4d", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
                 "efficientnet_b0", "efficientnet_b1", "efficientnet_v2_s", "vgg11_bn", "vgg16_bn",
                 "vgg16", "densenet121", "shufflenet_v2_x1_0", "regnet_y_400mf", "mnasnet1_0",
                 "convnext_tiny", "alexnet")
#: timm classifiers searched: the small and common ones people train on small images
TIMM_CANDIDATES = ("resnet10t", "resnet14t", "resnet18", "resnet18d", "resnet26", "resnet26d",
                   "resnet34", "resnet34d", "resnet50", "resnet50d", "seresnet18", "resnext50_32x4d",
                   "mobilenetv2_100", "mobilenetv3_small_050", "mobilenetv3_small_075",
                   "mobilenetv3_small_100", "mobilenetv3_large_100", "efficientnet_b0",
                   "efficientnet_b1", "efficientnet_lite0", "tf_efficientnet_b0", "convnext_atto",
                   "convnext_femto", "convnext_pico", "convnext_nano", "convnext_tiny",
                   "regnety_002", "regnetx_002", "rexnet_100", "ghostnet_100", "lcnet_050",
                   "mnasnet_100", "edgenext_xx_small", "densenet121")


def candidates() -> tuple[str, ...]:
    """Every name searched, in the order matches are reported: the zoo, torchvision, timm."""
    return (*model_names(), *(f"tv:{n}" for n in TV_CANDIDATES),
            *(f"timm:{n}" for n in TIMM_CANDIDATES))


def checkpoint_classes(state_dict: dict, arch: str) -> int | None:
    """Class count read from the final layer's weight, if the key is where ``arch`` puts it."""
    w = state_dict.get(classifier_key(arch) + ".weight")
    return int(w.shape[0]) if w is not None and w.dim() == 2 else None


def checkpoint_channels(state_dict: dict, arch: str) -> int | None:
    """Input channels read from the first convolution's weight, if ``arch`` has one there."""
    key = first_conv_key(arch)
    conv = state_dict.get(key) if key else None
    return int(conv.shape[1]) if conv is not None and conv.dim() == 4 else None


@lru_cache(maxsize=512)
def _shapes(arch: str, num_classes: int, in_channels: int) -> dict | None:
    """``{key: shape}`` of ``arch``'s state dict, built on meta; None if it cannot be built so."""
    try:
        with torch.device("meta"):
            sd = build_model(arch, num_classes=num_classes, in_channels=in_channels).state_dict()
    except InputError:
        return None
    return {k: tuple(v.shape) for k, v in sd.items()}


def matches(state_dict: dict, arch: str) -> bool:
    """True when ``state_dict`` has exactly ``arch``'s keys, each of its shape (for the class
    count and input channels the state dict itself shows)."""
    try:
        if state_keys(arch) != state_dict.keys():
            return False
        classes = checkpoint_classes(state_dict, arch)
        channels = checkpoint_channels(state_dict, arch) or 3
    except InputError:  # a candidate this torchvision/timm cannot build or refuses
        return False
    shapes = _shapes(arch, classes, channels) if classes and classes >= 2 else None
    return shapes is not None and all(shapes[k] == tuple(v.shape) for k, v in state_dict.items())


def suggest_archs(state_dict: dict, *, exclude=()) -> list[str]:
    """The candidate architectures (``candidates()``) whose keys and shapes ``state_dict`` has,
    in candidate order; ``exclude``: names already tried."""
    return [arch for arch in candidates() if arch not in exclude and matches(state_dict, arch)]


def match_phrase(names: list[str]) -> str:
    """The words every loader adds to a mismatch: which architectures the layers do match."""
    if not names:
        return ""
    if len(names) == 1:
        return f"; its layers match {names[0]!r}: choose that architecture"
    return f"; its layers match {', '.join(repr(n) for n in names)}: choose one of them"
