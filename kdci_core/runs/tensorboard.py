"""A run's scalars as TensorBoard event files (``kdci runs export --tensorboard DIR RUN...``).

Why: TensorBoard users keep their own dashboards; the run store's records (per-epoch metrics,
the ``log_every`` loss records, the final result) go into one event-file folder per run,
``DIR/<run id>/``, written with TensorBoard's own writer (``EventFileWriter`` and its protos),
so ``tensorboard --logdir DIR`` shows every run side by side. TensorBoard is an optional
dependency, imported only here; without it the command says how to install it.

Tags: ``epoch/<metric>`` at the epoch's global step, ``step/<loss term>`` every ``log_every``
steps, ``final/<number>`` once at the last step. Wall times are the run's own (its start plus
the record's ``wall_time_s``), so TensorBoard's relative time axis matches the run's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

from ..common.errors import InputError
from .store import Run

#: the pinned version (requirements.txt); named in the install hint
TENSORBOARD_PIN = "tensorboard==2.21.0"
#: record keys that are coordinates, not scalars
_COORDINATES = {"epoch", "step", "wall_time_s"}
#: result numbers exported once as final/<key>
FINAL = ("student_accuracy", "teacher_accuracy", "wall_time_s", "peak_memory_mb")


def _writer_parts():
    try:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        raise InputError("runs export --tensorboard: needs the optional package tensorboard, not "
                         f"installed here; install it with: pip install '{TENSORBOARD_PIN}'") from None
    return Event, Summary, EventFileWriter


def _numbers(record: dict) -> Iterable[tuple[str, float]]:
    for key, value in record.items():
        if key in _COORDINATES or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            yield key, float(value)


def scalars(run: Run) -> list[tuple[str, int, float, float]]:
    """(tag, step, value, wall time) of every scalar the run recorded, in the order written."""
    started = float(run.status().get("started_at") or run.status().get("created_at") or 0.0)
    out = []
    for level, records in (("epoch", run.history()), ("step", run.steps())):
        for r in records:
            step = int(r.get("step") or 0)
            wall = started + float(r.get("wall_time_s") or 0.0)
            out += [(f"{level}/{k}", step, v, wall) for k, v in _numbers(r)]
    result = run.result() or {}
    last = max((s for _, s, _, _ in out), default=0)
    end = float(run.status().get("finished_at") or started)
    out += [(f"final/{k}", last, float(result[k]), end) for k in FINAL
            if isinstance(result.get(k), (int, float)) and math.isfinite(result[k])]
    return out


def export_tensorboard(runs: Iterable[Run], out: Path | str) -> dict[Path, int]:
    """One event-file folder per run under ``out``: {folder: scalars written}. An export again
    replaces the run's earlier event file (written first, then the older ones removed), so
    TensorBoard never shows a curve twice. InputError when TensorBoard is not installed (before
    anything is written)."""
    Event, Summary, EventFileWriter = _writer_parts()
    out = Path(out).expanduser()
    written = {}
    for run in runs:
        folder = out / run.run_id
        folder.mkdir(parents=True, exist_ok=True)
        before = set(folder.glob("events.out.tfevents.*"))
        points = scalars(run)
        writer = EventFileWriter(str(folder))
        try:
            for tag, step, value, wall in points:
                writer.add_event(Event(wall_time=wall, step=step, summary=Summary(
                    value=[Summary.Value(tag=tag, simple_value=value)])))
        finally:
            writer.close()
        if set(folder.glob("events.out.tfevents.*")) - before:  # the new file exists: drop the old
            for old in before:
                old.unlink(missing_ok=True)
        written[folder] = len(points)
    return written
