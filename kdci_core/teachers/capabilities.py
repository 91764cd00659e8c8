"""What a loaded teacher can serve a method: the names the methods' ``teacher_needs`` use.

- ``logits``: its outputs (every teacher);
- ``features``: the penultimate vector (``forward(x, return_features=True)``);
- ``batchnorm``: BatchNorm layers with running statistics (DeepInversion-style matching);
- ``gradients``: gradients through the teacher to its input (synthesis).
A torch classifier serves all but ``batchnorm`` when it has no such layer; a black box (an ONNX
teacher) declares its own (``capabilities``: logits only).
"""

from __future__ import annotations

from torch import nn

CAPABILITIES = ("logits", "features", "batchnorm", "gradients")


def has_batchnorm_statistics(model: nn.Module) -> bool:
    """Any BatchNorm layer whose running statistics a synthesis can match (``methods.losses``)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
               and m.running_mean is not None for m in model.modules())


def teacher_capabilities(model: nn.Module) -> frozenset[str]:
    """What ``model`` (a teacher's module, torch or black box) can serve, among CAPABILITIES."""
    declared = getattr(model, "capabilities", None)
    if declared is not None:
        return frozenset(declared)
    caps = {"logits", "features", "gradients"}
    if has_batchnorm_statistics(model):
        caps.add("batchnorm")
    return frozenset(caps)
