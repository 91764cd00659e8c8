"""The distillation loop every method runs on, with KDCI plugged in at one place.

- ``config``: :class:`DistillConfig`, every option of a run; ``resolve()`` checks it and gives the complete one;
- ``loop``: :class:`Distiller`, the loop (``fit``), which reports to callbacks only;
- ``callbacks``: the :class:`Callback` protocol (one no-op method per event, ``should_stop``);
- ``records``: what the loop hands on, typed: :class:`EpochRecord` per epoch, :class:`FitResult`;
- ``state``: the resumable training state as one safetensors file (no pickle).

Where a run's records go (metrics, checkpoints, figures) is the run store's business
(:mod:`kdci_core.runs`), which runs this loop; nothing here imports it.
"""

from .callbacks import EVENTS, Callback, CallbackList, StepProgress
from .config import ABLATION_CHOICES, FUSION_CHOICES, DistillConfig
from .loop import Distiller, load_run_teacher
from .records import RECORD_VERSION, EpochRecord, FitResult
from .state import load_state, save_state

__all__ = ["ABLATION_CHOICES", "EVENTS", "Callback", "CallbackList", "DistillConfig", "Distiller",
           "EpochRecord", "FUSION_CHOICES", "FitResult", "RECORD_VERSION", "StepProgress", "load_run_teacher", "load_state", "save_state"]
