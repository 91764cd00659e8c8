"""Registries and the shared classifier base.

Every classifier in the zoo honours one contract (see docs/ARCHITECTURE.md): ``forward(x,
return_features=False)`` gives logits, or ``(logits, features)`` where ``features`` is the
penultimate vector fed to the final ``nn.Linear``. KD losses, KDCI's confounder dictionary and
feature-level methods all rely on it, so it is written once here and each architecture only
supplies :meth:`Classifier.embed` (image -> penultimate vector).

The registries live here rather than in ``__init__`` so architecture modules can import them
without a circular import.
"""

from __future__ import annotations

import torch
from torch import nn

from ..common.registry import Registry

MODELS: Registry = Registry("architecture")
GENERATORS: Registry = Registry("generator")


class Classifier(nn.Module):
    """Mixin/base for every classifier: forward + feature return, and the checkpoint key names.

    Subclasses set the class attributes ``classifier_key`` (state-dict prefix of the final
    Linear) and ``first_conv_key`` (state-dict key of the first conv weight) so the loaders can
    report shape mismatches without building a model. It defines no ``__init__`` so it can be
    mixed into an existing ``nn.Module`` (torchvision's MobileNetV2) ahead of it in the MRO.
    """

    classifier_key: str = "fc"
    first_conv_key: str = "conv1.weight"

    def _record(self, *, num_classes: int, in_channels: int, feature_dim: int) -> None:
        """Store the public attributes callers read (``feature_dim`` sizes KDCI's prototypes)."""
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.feature_dim = int(feature_dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Image batch -> penultimate vector ``B x feature_dim``."""
        raise NotImplementedError

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Penultimate vector -> logits; by default the final Linear itself."""
        return self.get_submodule(self.classifier_key)(features)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        features = self.embed(x)
        logits = self.classify(features)
        return (logits, features) if return_features else logits


def global_pool(x: torch.Tensor) -> torch.Tensor:
    """Adaptive average pool to 1x1 and flatten: parameter shapes never depend on input size."""
    return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
