"""The loop's typed outputs: one :class:`EpochRecord` per epoch and one :class:`FitResult` per fit.

Why typed: what the loop hands on is read by the run store, the command line, the reports and the
benchmarks; with attributes, a renamed field is found by a type checker instead of a ``KeyError``
three layers up. Both are frozen and built whole by the loop: no callback adds to them (the run's
id lives in the run store's record, not here).

On disk they keep the flat JSON of earlier releases (``metrics.jsonl`` lines, ``result.json``,
``distill --json``) plus a ``version``: :meth:`to_json` writes it, :meth:`from_json` reads it back
from this release and the earlier ones (a missing field is None or empty).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..common.system import SYSTEM_METRICS

#: bump when a field changes meaning or a key is renamed
RECORD_VERSION = 1
_EPOCH_CORE = ("epoch", "step", "student_accuracy", "wall_time_s", "lr")


def _is_kdci(key: str) -> bool:
    return key.startswith("kdci_") or key == "compensated_accuracy"


@dataclass(frozen=True)
class EpochRecord:
    """One epoch's evaluation: the student's test accuracy, the epoch's mean of each loss term,
    KDCI's telemetry (when on) and the process's system metrics."""

    epoch: int
    step: int
    student_accuracy: float
    wall_time_s: float
    lr: float
    losses: Mapping[str, float] = field(default_factory=dict)  # each term's epoch mean, with "loss"
    kdci: Mapping[str, Any] = field(default_factory=dict)  # kdci_* telemetry, compensated_accuracy
    system: Mapping[str, float] = field(default_factory=dict)  # common.system.SYSTEM_METRICS

    @property
    def loss(self) -> float | None:
        return self.losses.get("loss")

    def to_json(self) -> dict:
        """The flat ``metrics.jsonl`` line."""
        core = {k: getattr(self, k) for k in _EPOCH_CORE}
        return {"version": RECORD_VERSION, **core, **self.losses, **self.kdci, **self.system}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "EpochRecord":
        rest = {k: v for k, v in data.items() if k not in _EPOCH_CORE and k != "version"}
        return cls(**{k: data.get(k) for k in _EPOCH_CORE},
                   losses={k: v for k, v in rest.items() if not _is_kdci(k) and k not in SYSTEM_METRICS},
                   kdci={k: v for k, v in rest.items() if _is_kdci(k)},
                   system={k: v for k, v in rest.items() if k in SYSTEM_METRICS})


@dataclass(frozen=True)
class FitResult:
    """What one fit produced: the final student's evaluation, the history, the settings in force."""

    method: str
    kdci: bool
    dataset: str
    teacher_arch: str
    student_arch: str
    seed: int
    device: str
    teacher_accuracy: float
    teacher_sha256: str | None
    student_accuracy: float
    per_class_accuracy: list[float]
    prediction_counts: list[int]  # the final student's predictions per class (collapse shows here)
    class_names: list[str]
    history: tuple[EpochRecord, ...]
    wall_time_s: float
    resumed_from_step: int | None
    peak_memory_mb: float | None
    k: int | str | None  # the K in use (the K curve's choice under --k auto); None with KDCI off
    tau: float | None
    student_parameters: int
    teacher_parameters: int
    config: Mapping[str, Any]
    augment: str | None
    optimizer: Mapping[str, Any] | None
    input_spec: Mapping[str, Any] | None
    compiled: Mapping[str, Any] | None = None
    dictionary: Mapping[str, Any] | None = None  # k, proportions, rebuilds (KDCI on)
    kdci_telemetry: Mapping[str, Any] | None = None  # the final student's, with inert_reason

    def to_json(self) -> dict:
        """The flat ``result.json`` / ``distill --json`` dict (history as metrics lines)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["history"] = [r.to_json() for r in self.history]
        return {"version": RECORD_VERSION, **out}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "FitResult":
        """Read a stored result (this release's or an earlier one's; unknown keys, such as the run
        store's ``run_id``, are left out)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {name: data.get(name) for name in names}
        values["history"] = tuple(EpochRecord.from_json(r) for r in data.get("history") or ())
        return cls(**values)

    @property
    def last_epoch(self) -> EpochRecord | None:
        return self.history[-1] if self.history else None
