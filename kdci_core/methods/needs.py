"""What each method needs from its teacher, and the one check that a teacher can serve it.

Every method declares ``teacher_needs`` beside its other defaults, among: ``logits`` (its
outputs), ``features`` (its penultimate vector: DAFL's activation term), ``batchnorm`` (its
BatchNorm running statistics: DeepInversion, Fast, CMI) and ``gradients`` (backpropagation
through the teacher to the synthetic images or a generator). A teacher serves a set of them
(``teachers.capabilities``): a black-box ONNX teacher only its logits, a torch one everything but
BatchNorm statistics when it has no BatchNorm layer. Runs are refused before they start, the
pages grey the method out with the same reason.
"""

from __future__ import annotations

from ..common.errors import InputError
from .registry import METHODS

#: each need and how a message names it, in the order messages list them
NEEDS = {"logits": "the teacher's outputs", "features": "the teacher's penultimate features",
         "batchnorm": "the teacher's BatchNorm statistics",
         "gradients": "gradients through the teacher"}


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def describe_needs(needs) -> str:
    """``{"batchnorm", "gradients"}`` -> "the teacher's BatchNorm statistics and gradients ..."."""
    return _and([text for name, text in NEEDS.items() if name in needs])


def describe_teacher(capabilities) -> str:
    """What a teacher with ``capabilities`` is, for a refusal."""
    caps = frozenset(capabilities)
    if "gradients" not in caps:
        return "an ONNX teacher is a black box that gives only its outputs"
    if caps >= {"logits", "features", "gradients"}:
        return "this teacher has no BatchNorm layers with running statistics"
    return f"this teacher gives only {describe_needs(caps)}"


def _method(method):
    return METHODS.get(method) if isinstance(method, str) else method


def missing_needs(method, capabilities) -> frozenset[str]:
    return frozenset(_method(method).teacher_needs) - frozenset(capabilities)


def unmet_reason(method, capabilities) -> str | None:
    """Why a teacher with ``capabilities`` cannot serve ``method`` (a name or class), or None."""
    missing = missing_needs(method, capabilities)
    if not missing:
        return None
    return f"needs {describe_needs(missing)}; {describe_teacher(capabilities)}"


def methods_for_teacher(capabilities) -> dict[str, str | None]:
    """Every method -> None when the teacher serves it, else the reason (the pages grey it out)."""
    return {name: unmet_reason(name, capabilities) for name in METHODS.names()}


def check_teacher_serves(method, capabilities) -> None:
    """Refuse ``method`` when the teacher lacks one of its needs: the method, the missing needs,
    what the teacher is and the methods it can serve, in one line."""
    reason = unmet_reason(method, capabilities)
    if reason is None:
        return
    served = [name for name, why in methods_for_teacher(capabilities).items() if why is None]
    raise InputError(f"--method {_method(method).name}: {reason}; methods it can serve: "
                     f"{', '.join(served) or 'none'}")
