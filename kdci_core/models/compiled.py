"""``--compile``: a module's forward through ``torch.compile``, or eagerly when it cannot compile.

``torch.compile`` is lazy: a missing C++ toolchain, an unsupported operator or platform fails at
the first call, not at ``torch.compile(...)``. The wrapper tries that first call compiled; if it
fails it warns once, says why, and runs the module eagerly from then on, so a run never dies of
an optimisation it asked for. Parameters, buffers and state dicts stay the module's own (no
``_orig_mod.`` prefix in a checkpoint): only the loop's calls go through the compiled graph.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn


class CompiledOrEager:
    def __init__(self, module: nn.Module, enabled: bool, *, what: str = "module"):
        self.module, self.what = module, what
        self.compiled, self.fallback_reason, self._first = None, None, True
        if enabled:
            try:
                self.compiled = torch.compile(module)
            except Exception as exc:  # noqa: BLE001 (any compiler failure means: run eagerly)
                self._fall_back(exc)

    @property
    def active(self) -> bool:
        """True while calls go through the compiled graph."""
        return self.compiled is not None

    def _fall_back(self, exc: BaseException) -> None:
        self.compiled = None
        self.fallback_reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
        warnings.warn(f"--compile: the {self.what} could not be compiled ({self.fallback_reason}); "
                      "running it eagerly", RuntimeWarning, stacklevel=3)

    def __call__(self, *args, **kwargs):
        if self.compiled is None:
            return self.module(*args, **kwargs)
        if not self._first:
            return self.compiled(*args, **kwargs)
        try:  # the first call compiles: a failure there is a compiler's, not the model's
            out = self.compiled(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            self._fall_back(exc)
            return self.module(*args, **kwargs)
        self._first = False
        return out
