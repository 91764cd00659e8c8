"""The DFKD methods, each registered by name; all run on the one loop in ``kdci_core.distill``."""

from ..registry import Registry

METHODS = Registry("method")

from . import cmi, dafl, deepinv, dfnd, fast, mosaickd  # noqa: E402,F401  (registration side effects)
from .base import DFKDMethod, MethodContext  # noqa: E402

__all__ = ["METHODS", "DFKDMethod", "MethodContext"]
