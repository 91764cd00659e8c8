"""The on-disk run store: one folder per run under ``$KDCI_HOME/runs`` (default ``~/.kdci``).

Each run folder holds ``config.json`` (what was asked), ``status.json`` (state, pid, error,
timestamps), ``metrics.jsonl`` (one JSON object per evaluation, appended as they arrive),
``steps.jsonl`` (the loss terms every ``log_every`` steps), ``result.json`` (the final summary),
``student.safetensors``, ``annotations.json`` (the user's tags and notes, written only by the
user's side), and while it runs ``heartbeat`` (the worker's last sign of life), ``progress.json``
(its step counter and ETA), ``checkpoint.safetensors`` (the resumable state, see
kdci_core.distill.state), ``worker.log`` and ``cancel`` (a cancel request), and the hidden
``.lock`` (status changes, status.py's state machine) and ``.status.reserve`` (reserve.py). Plain
files, readable without the app; every whole-file write is atomic (temp file + rename, no
temporary left when it fails); a torn last metrics line (a worker killed mid-write) is skipped on
read, and an append that fails is cut back. ``index.sqlite`` (index.py) mirrors each run's
summary for listing; the folders are the truth and rebuild it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from pathlib import Path

from ..common.errors import InputError
from ..common.jsonio import (append_line, atomic_write_json, atomic_write_text, json_default, read_json,
                             storage_error)
from ..common.paths import kdci_home
from .collapse import prediction_summary
from .index import RunIndex
from .integrity import problems
from .locks import file_lock
from .names import is_run_id, normal_name, validate_run_id, validate_run_name
from .status import ACTIVE, CORRUPT, QUEUED, RUNNING, check_transition

__all__ = ["Run", "RunStore", "run_label", "validate_run_id", "validate_run_name"]


class Run:
    """Handle on one run folder (and the store's index, kept in step with it)."""

    def __init__(self, root: Path, index: RunIndex | None = None):
        self.root = root
        self.run_id = root.name
        self.index = index

    # --- writing -------------------------------------------------------------------------
    def lock(self):
        """The run folder's exclusive lock (locks.file_lock): every status change holds it."""
        return file_lock(self.root / ".lock")

    def set_status(self, status: str, *, expect=None, **fields) -> dict:
        """Change the status under the run's lock, checked against the state machine
        (status.TRANSITIONS; ``expect``: the statuses the run must have now); StatusConflict
        when the change is not allowed, StorageError when the file cannot be written."""
        with self.lock():
            state = self.next_status(status, expect=expect, **fields)
            self.write_status(state)
            return state

    def next_status(self, status: str, *, expect=None, **fields) -> dict:
        """The state ``set_status`` would write (checked, not written): for a caller that holds
        the lock and must decide what to do when the disk refuses it (the monitor)."""
        state = self.status()
        check_transition(self.run_id, state.get("status"), status, expect)
        now = time.time()
        if state.get("status") != status or not state.get("transitions"):  # the status history
            state.setdefault("transitions", []).append({"status": status, "at": now,
                                                        "error": fields.get("error")})
        state.update(fields, status=status, updated_at=now)
        if status == RUNNING:
            state.setdefault("started_at", now)
        return state

    def write_status(self, state: dict) -> None:
        atomic_write_json(self.root / "status.json", state)
        self.sync_index(state)

    def hold_status(self, state: dict) -> None:
        """Show ``state`` in this process's listings without writing it anywhere (the disk
        refused it): ``status()`` and the index's rows show it while the status file is unchanged."""
        if self.index is not None:
            self.index.held[self.run_id] = (_readable(self.status_file, {}).get("updated_at"), state)

    def sync_index(self, state: dict | None = None) -> None:
        """Write this run's row of the index from its folder (or from ``state`` just written)."""
        if self.index is not None:
            self.index.upsert(self.index_row(state))

    def index_row(self, state: dict | None = None) -> dict:
        """This run's row of the SQLite index; a damaged folder (integrity.py) gets a row too,
        status ``corrupt`` and the damage as its error, with whatever parts are readable."""
        damage = problems(self.root)
        if damage:
            state = {**_readable(self.status, {}), "status": CORRUPT, "error": "corrupt run folder: "
                     + "; ".join(damage)}
        state = state if state is not None else self.status()
        cfg, result, notes = _readable(self.config, {}), _readable(self.result, None) or {}, self.annotations()
        last, top = self.last_metrics(), prediction_summary(result)
        return {"run_id": self.run_id, "name": state.get("name"), "status": state.get("status"),
                "method": cfg.get("method"), "kdci": cfg.get("kdci"), "dataset": cfg.get("dataset"),
                "student": cfg.get("student"), "seed": cfg.get("seed"), "k": cfg.get("k"),
                "ablation": cfg.get("ablation"), "created_at": state.get("created_at"),
                "updated_at": state.get("updated_at"), "pid": state.get("pid"),
                "host": state.get("host"), "backend": state.get("backend"),
                "student_accuracy": result.get("student_accuracy", (last or {}).get("student_accuracy")),
                "teacher_accuracy": result.get("teacher_accuracy"),
                "last_epoch": (last or {}).get("epoch"), "epochs": cfg.get("epochs"),
                "error": state.get("error"), "config": cfg, "started_at": state.get("started_at"),
                "finished_at": state.get("finished_at"),
                "wall_time_s": result.get("wall_time_s", (last or {}).get("wall_time_s")),
                "teacher_sha256": result.get("teacher_sha256") or state.get("teacher_sha256"),
                "tags": notes["tags"], "notes": notes["notes"],
                # the final student's most predicted class and its share (runs.collapse)
                "top_class": (top or {}).get("name"), "top_share": (top or {}).get("share")}

    def annotate(self, *, tags: list[str] | None = None, notes: str | None = None) -> dict:
        """Set the run's tags and/or notes (None: keep); any status, an active run included."""
        current = self.annotations()
        if tags is not None:
            if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
                raise InputError(f"tags: expected a list of strings, found {tags!r}")
            current["tags"] = sorted({t.strip() for t in tags if t.strip()})
        if notes is not None:
            if not isinstance(notes, str):
                raise InputError(f"notes: expected text, found {type(notes).__name__}")
            current["notes"] = notes
        atomic_write_json(self.root / "annotations.json", current)
        self.sync_index()
        return current

    def annotations(self) -> dict:
        """{"tags": [...], "notes": "..."} (empty ones when never annotated or unreadable)."""
        try:
            data = read_json(self.root / "annotations.json") or {}
        except InputError:
            data = {}
        return {"tags": list(data.get("tags") or []), "notes": str(data.get("notes") or "")}

    def heartbeat(self) -> None:
        """The worker is alive (a timestamp in its own file: no race with status writes)."""
        atomic_write_text(self.root / "heartbeat", f"{time.time():.3f}")

    def last_heartbeat(self) -> float | None:
        try:
            return float((self.root / "heartbeat").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def request_cancel(self) -> None:
        """The cancel flag. The file's existence is the request, so a full disk (room for a
        name, none for bytes) still takes it; the time goes in when there is room."""
        try:
            fd = os.open(self.root / "cancel", os.O_WRONLY | os.O_CREAT, 0o644)
        except OSError as exc:
            raise storage_error(self.root / "cancel", exc) from None
        try:
            os.write(fd, f"{time.time():.3f}".encode())
        except OSError:
            pass
        finally:
            os.close(fd)

    def clear_cancel(self) -> None:
        (self.root / "cancel").unlink(missing_ok=True)

    def cancel_requested(self) -> bool:
        return (self.root / "cancel").exists()

    def write_metrics(self, records: list[dict]) -> None:
        """Replace the metrics file by ``records`` (atomically): a resume makes it the checkpoint's
        history, so records past the checkpoint are dropped and none is missing or doubled."""
        atomic_write_text(self.root / "metrics.jsonl",
                          "".join(json.dumps(m, default=json_default) + "\n" for m in records))

    def append_metrics(self, record: dict) -> None:
        """One epoch record as one line of ``metrics.jsonl`` (see :meth:`_append`)."""
        self._append("metrics.jsonl", record)
        self.sync_index()  # the run table shows the newest epoch and accuracy

    def append_steps(self, record: dict) -> None:
        """One ``log_every`` record (loss terms over a window of steps) in ``steps.jsonl``."""
        self._append("steps.jsonl", record)

    def write_steps(self, records: list[dict]) -> None:
        """Replace ``steps.jsonl`` (a resume keeps the records up to its checkpoint's step)."""
        atomic_write_text(self.root / "steps.jsonl",
                          "".join(json.dumps(m, default=json_default) + "\n" for m in records))

    def _append(self, name: str, record: dict) -> None:
        """One record as one line (jsonio.append_line: whole, torn at a kill, cut back on a full disk)."""
        append_line(self.root / name, (json.dumps(record, default=json_default) + "\n").encode())

    def write_progress(self, progress: dict) -> None:
        """The worker's step counter (``progress.json``, atomic; rewritten about once a second)."""
        atomic_write_json(self.root / "progress.json", progress)

    def write_result(self, result: dict) -> None:
        atomic_write_json(self.root / "result.json", result)
        self.sync_index()

    def path(self, name: str) -> Path:
        return self.root / name

    # --- reading -------------------------------------------------------------------------
    def config(self) -> dict:
        return _json_object(self.root / "config.json") or {}

    def status(self) -> dict:
        """The status file's state, or the one this process holds for it (``hold_status``)."""
        state = self.status_file()
        held = self.index.held.get(self.run_id) if self.index is not None else None
        return dict(held[1]) if held and held[0] == state.get("updated_at") else state

    def status_file(self) -> dict:
        """What ``status.json`` says (no held state)."""
        return _json_object(self.root / "status.json") or {"status": QUEUED}

    def result(self) -> dict | None:
        return _json_object(self.root / "result.json")  # the run's id + FitResult.to_json()

    def fit_result(self):
        """The loop's result, typed (a ``distill.FitResult``; None while the run is unfinished)."""
        from ..distill.records import FitResult  # here: the store's own commands never load torch

        return None if (data := self.result()) is None else FitResult.from_json(data)

    def metrics(self) -> list[dict]:
        """The per-epoch records."""
        return self._lines("metrics.jsonl")

    def steps(self) -> list[dict]:
        """The ``log_every`` records (empty for a run that logged per epoch only)."""
        return self._lines("steps.jsonl")

    def _lines(self, name: str) -> list[dict]:
        """The JSON records of a lines file; a torn line (a killed worker) or garbage is skipped
        here and reported by integrity.problems."""
        path = self.root / name
        if not path.exists():
            return []
        out = []
        for line in path.read_bytes().decode(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                out.append(record)
        return out

    def progress(self) -> dict:
        """Where the worker is: ``step``, ``total_steps``, ``steps_per_s``, ``eta_s``, ``at`` (the
        time it was written) and, for a queued run, nothing; {} before the first step."""
        try:
            return read_json(self.root / "progress.json") or {}
        except InputError:
            return {}

    def last_metrics(self) -> dict | None:
        records = self.metrics()
        return records[-1] if records else None

    def history(self) -> list[dict]:
        """Per-epoch records: the metrics file, or the result's history when that file is missing."""
        return self.metrics() or list((self.result() or {}).get("history") or [])

    @property
    def label(self) -> str:
        return run_label(self.config())

    def series(self, level: str = "epoch") -> dict:
        """What a curve of this run needs, as plain data: id, label, config, history (``level``
        ``step``: the ``log_every`` records, or the epoch records of a run that has none)."""
        history = (self.steps() or self.history()) if level == "step" else self.history()
        return {"run_id": self.run_id, "label": self.label, "config": self.config(), "history": history}

    def summary(self) -> dict:
        st = self.status()
        return {"run_id": self.run_id, "name": st.get("name"), "status": st.get("status"),
                "pid": st.get("pid"), "host": st.get("host"), "backend": st.get("backend"),
                "error": st.get("error"), "created_at": st.get("created_at"),
                "updated_at": st.get("updated_at"), "heartbeat_at": self.last_heartbeat(),
                "config": self.config(), "history": self.metrics(), "result": self.result(),
                "status_history": st.get("transitions", [])}

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the worker's log (empty when it wrote none)."""
        path = self.root / "worker.log"
        if not path.exists():
            return ""
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])

    def artifacts(self) -> list[dict]:
        """The files of the run folder (name, bytes), hidden temporaries left out."""
        return [{"name": str(p.relative_to(self.root)), "bytes": p.stat().st_size}
                for p in sorted(self.root.rglob("*")) if p.is_file() and not p.name.startswith(".")]


def run_label(config: dict) -> str:
    """How a run is named in tables and legends: method, KDCI setting, seed."""
    return f"{config.get('method')} kdci={'on' if config.get('kdci') else 'off'} seed {config.get('seed')}"


class RunStore:
    """All runs under one home directory."""

    def __init__(self, home: Path | str | None = None):
        self.home = Path(home) if home is not None else kdci_home()
        self.runs_dir = self.home / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.index = RunIndex(self.home / "index.sqlite")
        self.index.refill = self.rebuild_index  # after a repair of the index while in use
        if self.index.recreated or self.index.run_ids() != {p.name for p in self._folders()}:
            self.rebuild_index()

    def _folders(self) -> list[Path]:
        return [p for p in self.runs_dir.iterdir() if (p / "config.json").exists()]

    def rebuild_index(self) -> int:
        """Re-read every run folder into the index (the folders are the truth)."""
        known = set()
        for p in self._folders():
            run = Run(p, self.index)
            run.sync_index()  # a damaged folder gets a ``corrupt`` row with the reason
            known.add(run.run_id)
        for stale in self.index.run_ids() - known:
            self.index.delete(stale)
        return len(known)

    def rows(self, **query) -> list[dict]:
        """Index rows (see RunIndex.query: status/method/dataset/text filters, sort, limit)."""
        return self.index.query(**query)

    def create(self, config: dict, *, name: str | None = None) -> Run:
        """A new queued run. Its folder is a generated id (time, method, KDCI, random hex);
        ``name`` is only a label (names.validate_run_name), unique in the store."""
        label = validate_run_name(name) if name is not None else None
        if label is not None and self.index.ids_named(label):
            raise InputError(f"run name {label!r}: a run with that name already exists")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        kind = f"{config.get('method', 'run')}-{'kdci' if config.get('kdci') else 'base'}"
        while True:
            root = self.runs_dir / validate_run_id(f"{stamp}-{kind}-{secrets.token_hex(3)}")
            try:
                root.mkdir(parents=True)
                break
            except FileExistsError:
                continue  # the same second and the same 24 random bits: draw again
            except OSError as exc:  # a read-only or full disk: one clear line, nothing written
                raise storage_error(root, exc) from None
        run = Run(root, self.index)
        atomic_write_json(root / "config.json", config)
        run.set_status(QUEUED, created_at=time.time(), name=label)
        return run

    def get(self, ref: str) -> Run:
        """A run by its id, or by its name when no run has that id and one run has that name."""
        if isinstance(ref, str) and is_run_id(ref) and (self.runs_dir / ref / "config.json").exists():
            return Run(self.runs_dir / ref, self.index)
        ids = self.index.ids_named(normal_name(ref)) if isinstance(ref, str) else []
        if len(ids) == 1 and (self.runs_dir / ids[0] / "config.json").exists():
            return Run(self.runs_dir / ids[0], self.index)
        if len(ids) > 1:
            raise InputError(f"run name {ref!r}: {len(ids)} runs have it ({', '.join(ids)}); give the run id")
        raise InputError(f"run {ref!r}: no such run (no run has that id or name) in {self.runs_dir}")

    def delete(self, run_id: str) -> None:
        """Remove a run that is not active: its folder and its index row."""
        run = self.get(run_id)
        status = _readable(run.status, {}).get("status")  # a corrupt run can be deleted
        if status in ACTIVE:
            raise InputError(f"run {run_id}: it is {status}; cancel it before deleting it")
        shutil.rmtree(run.root)
        self.index.delete(run_id)

    def list(self) -> list[Run]:
        """Every run, newest first (a run with a damaged status sorts last)."""
        runs = [Run(p, self.index) for p in self._folders()]
        return sorted(runs, key=lambda r: _readable(r.status, {}).get("created_at") or 0, reverse=True)


def _json_object(path: Path) -> dict | None:
    """A run file's JSON object (None: no such file); InputError when it is damaged."""
    data = read_json(path)
    if data is not None and not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _readable(read, default):
    """``read()``, or ``default`` when the file it reads is damaged (InputError)."""
    try:
        return read()
    except InputError:
        return default
