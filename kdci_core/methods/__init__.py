"""The DFKD methods, each registered by name in ``METHODS``; all run on the one loop in
``kdci_core.distill``. Each declares its own defaults (KDCI's K among them) beside its code."""

from . import cmi, dafl, deepinv, dfnd, fast, mosaickd, plain  # noqa: F401  (registration)
from .base import DFKDMethod, GenerationMethod, MethodContext, SamplingMethod
from .needs import NEEDS, check_teacher_serves, methods_for_teacher, unmet_reason
from .registry import METHODS

__all__ = ["METHODS", "NEEDS", "DFKDMethod", "GenerationMethod", "MethodContext", "SamplingMethod",
           "check_teacher_serves", "methods_for_teacher", "unmet_reason"]
