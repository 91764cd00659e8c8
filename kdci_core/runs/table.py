"""The run table's rows and groups as plain data, for the Runs page and ``runs list``.

One row per run from the index, with what a user scans a table for: the teacher (name and short
hash), K, learning rate, the step counter, the duration so far, the ETA of a running run (from
its ``progress.json``) and the queue position of a queued one; tags and notes; a collapsed
student's flag (``runs.collapse``). ``groups`` summarises runs by any config fields (default:
method x setting), counts by status, mean and std of the accuracy; a group never mixes
teachers (the file's sha256), datasets or schedules: those are always part of its key.
"""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

from .collapse import COLLAPSE_SHARE
from .configs import canonical_config, canonical_path, value_key
from .queue import queue_positions
from .status import QUEUED, RUNNING
from .store import RunStore

_UPLOAD = re.compile(r"(?:^|/)uploads/([0-9a-f]{64})/")
#: the grouping a table starts with; ``setting`` is the derived KDCI / ablation / correction label
DEFAULT_GROUP_BY = ("method", "setting")
#: what a group never mixes, whatever it is grouped by: part of every group's key, shown in its row
ALWAYS_APART = ("teacher", "dataset", "schedule")
#: the config fields a schedule is made of (``schedule_label``)
SCHEDULE_FIELDS = ("epochs", "steps_per_epoch", "batch_size", "preset")


def teacher_label(config: dict, sha256: str | None) -> str:
    """``builtin`` or the teacher file's name with its hash's first 8 digits."""
    path = str(config.get("teacher") or "builtin")
    if path == "builtin":
        return "builtin"
    sha = sha256 or (m.group(1) if (m := _UPLOAD.search(path)) else None)
    return f"{Path(path).name} ({sha[:8]})" if sha else Path(path).name


def teacher_identity(config: dict, sha256: str | None) -> str:
    """What tells teachers apart: ``builtin``, else the file's sha256 (recorded when the run
    starts; an upload's folder is named by it), else the resolved path of a file not yet hashed."""
    path = str(config.get("teacher") or "builtin")
    if path == "builtin":
        return "builtin"
    sha = sha256 or (m.group(1) if (m := _UPLOAD.search(path)) else None)
    return sha or f"file {canonical_path(path)}"


def schedule_label(config: dict) -> str:
    """"10 x 50 steps, batch 64, quick": epochs x steps per epoch, batch size, preset."""
    return (f"{config.get('epochs')} x {config.get('steps_per_epoch')} steps, batch "
            f"{config.get('batch_size')}, {config.get('preset') or 'quick'}")


def setting_label(config: dict) -> str:
    """What a run changes against its method's plain baseline: KDCI on/off, ablation, correction."""
    parts = ["KDCI on" if config.get("kdci") else "KDCI off"]
    if config.get("ablation") not in (None, "none"):
        parts.append(f"ablation {config['ablation']}")
    if config.get("correction") not in (None, "none"):
        parts.append(f"correction {config['correction']}")
    return ", ".join(parts)


def _duration(row: dict, now: float) -> float | None:
    start = row.get("started_at")
    if not start:
        return None
    if row.get("status") == RUNNING:
        return now - start
    end = row.get("finished_at") or row.get("updated_at")
    return end - start if end else None


def table_rows(store: RunStore, *, now: float | None = None, **query) -> list[dict]:
    """The rows of the run table (``query``: RunIndex.query filters and sort)."""
    now = time.time() if now is None else now
    positions = queue_positions(store.index)
    out = []
    for row in store.rows(**query):
        cfg = row["config"] or {}
        total = (cfg.get("epochs") or 0) * (cfg.get("steps_per_epoch") or 0) or None
        step, eta = (row.get("last_epoch") or 0) * (cfg.get("steps_per_epoch") or 0), None
        if row["status"] == RUNNING:
            progress = store.get(row["run_id"]).progress() if (store.runs_dir / row["run_id"]).exists() else {}
            step = progress.get("step", step)
            if progress.get("eta_s") is not None:
                eta = max(0.0, progress["eta_s"] - (now - progress.get("at", now)))
        share = row.get("top_share")
        out.append({
            "run": row["run_id"], "status": row["status"],
            "queue": positions.get(row["run_id"]) if row["status"] == QUEUED else None,
            "method": row["method"], "setting": setting_label(cfg), "seed": row["seed"],
            "K": (str(cfg["k"]) if cfg.get("k") is not None else "default") if cfg.get("kdci") else "",
            "teacher": teacher_label(cfg, row.get("teacher_sha256")), "lr": cfg.get("lr"),
            "step": step, "total_steps": total, "epoch": row.get("last_epoch") or 0,
            "epochs": row.get("epochs"), "accuracy": row.get("student_accuracy"),
            "duration_s": _duration(row, now), "eta_s": eta, "tags": row.get("tags") or [],
            "notes": row.get("notes") or "", "dataset": row["dataset"], "backend": row["backend"],
            "created_at": row["created_at"], "error": row["error"] or "",
            "config": canonical_config(cfg), "teacher_id": teacher_identity(cfg, row.get("teacher_sha256")),
            "schedule": schedule_label(cfg),
            "collapsed": share is not None and share > COLLAPSE_SHARE,
            "top_class": row.get("top_class"), "top_share": share})
    return out


def group_fields(rows: list[dict]) -> list[str]:
    """What the table can be grouped by: ``setting``, then every config field of the rows'
    runs (the teacher, dataset and schedule need no choosing: groups never mix them)."""
    fields = sorted({k for r in rows for k in r.get("config") or {}} - {"teacher", "dataset"})
    return ["setting", *fields]


def _value(row: dict, name: str):
    if name == "setting":
        return row.get("setting")
    if name in ("method", "seed") and name in row:
        return row[name]
    return (row.get("config") or {}).get(name)


def _shown(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "{}"
    return str(value)


def groups(rows: list[dict], by=DEFAULT_GROUP_BY) -> list[dict]:
    """The rows summarised by the fields ``by`` (``setting`` or config fields), always apart by
    teacher, dataset and schedule: runs per status, mean and std of the accuracy of the finished
    ones, the seeds, and how many finished students collapsed."""
    by = [f for f in dict.fromkeys(by) if f not in ("teacher", "dataset")]
    buckets: dict[tuple, list[dict]] = {}
    for r in rows:
        key = tuple(value_key(_value(r, f)) for f in by) + (
            r.get("teacher_id") or r.get("teacher"), r.get("dataset"), r.get("schedule"))
        buckets.setdefault(key, []).append(r)
    out = []
    for key, members in sorted(buckets.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        first = members[0]
        done = [m["accuracy"] for m in members if m["status"] == "finished" and m["accuracy"] is not None]
        counts: dict[str, int] = {}
        for m in members:
            counts[m["status"]] = counts.get(m["status"], 0) + 1
        out.append({**{f: _shown(_value(first, f)) for f in by},
                    "teacher": first.get("teacher"), "dataset": first.get("dataset"),
                    "schedule": first.get("schedule"), "runs": len(members),
                    "statuses": ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
                    "finished": len(done), "mean accuracy": statistics.fmean(done) if done else None,
                    "std": statistics.stdev(done) if len(done) > 1 else None,
                    "collapsed": sum(bool(m.get("collapsed")) for m in members),
                    "seeds": ", ".join(str(s) for s in sorted({m["seed"] for m in members if m["seed"] is not None}))})
    return out


def format_seconds(seconds: float | None) -> str:
    """``1 h 02 min``, ``3 min 05 s``, ``42 s``; empty for None."""
    if seconds is None:
        return ""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"
