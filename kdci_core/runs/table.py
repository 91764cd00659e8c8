"""The run table's rows and groups as plain data, for the Runs page and ``runs list``.

One row per run from the index, with what a user scans a table for: the teacher (name and short
hash), K, learning rate, the step counter, the duration so far, the ETA of a running run (from
its ``progress.json``) and the queue position of a queued one; tags and notes. ``groups``
summarises runs by method x setting (counts by status, mean and std of the accuracy).
"""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

from .queue import queue_positions
from .status import QUEUED, RUNNING
from .store import RunStore

_UPLOAD = re.compile(r"(?:^|/)uploads/([0-9a-f]{64})/")


def teacher_label(config: dict, sha256: str | None) -> str:
    """``builtin`` or the teacher file's name with its hash's first 8 digits."""
    path = str(config.get("teacher") or "builtin")
    if path == "builtin":
        return "builtin"
    sha = sha256 or (m.group(1) if (m := _UPLOAD.search(path)) else None)
    return f"{Path(path).name} ({sha[:8]})" if sha else Path(path).name


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
            "created_at": row["created_at"], "error": row["error"] or ""})
    return out


def groups(rows: list[dict]) -> list[dict]:
    """The rows summarised by (method, setting): runs per status, mean and std of the accuracy
    of the finished ones, and the seeds."""
    buckets: dict[tuple, list[dict]] = {}
    for r in rows:
        buckets.setdefault((r["method"], r["setting"]), []).append(r)
    out = []
    for (method, setting), members in sorted(buckets.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        done = [m["accuracy"] for m in members if m["status"] == "finished" and m["accuracy"] is not None]
        counts: dict[str, int] = {}
        for m in members:
            counts[m["status"]] = counts.get(m["status"], 0) + 1
        out.append({"method": method, "setting": setting, "runs": len(members),
                    "statuses": ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
                    "finished": len(done), "mean accuracy": statistics.fmean(done) if done else None,
                    "std": statistics.stdev(done) if len(done) > 1 else None,
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
