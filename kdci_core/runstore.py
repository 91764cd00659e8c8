"""The on-disk run store: one folder per run under ``$KDCI_HOME/runs`` (default ``~/.kdci``).

Each run folder holds ``config.json`` (what was asked), ``status.json`` (state, pid, error,
timestamps), ``metrics.jsonl`` (one JSON object per evaluation, appended as they arrive),
``result.json`` (the final summary) and ``student.safetensors``. Plain files, readable without
the app; every whole-file write is atomic (temp file + rename); a torn last metrics line (a
worker killed mid-write) is skipped on read.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from pathlib import Path

from .errors import InputError

STATUSES = ("queued", "running", "finished", "failed", "cancelled")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def kdci_home() -> Path:
    home = Path(os.environ.get("KDCI_HOME") or Path.home() / ".kdci").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def atomic_write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=_json_default)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_default(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def validate_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id) or ".." in run_id:
        raise InputError(f"run id {run_id!r}: expected letters, digits, '-', '_' or '.' "
                         "(no path separators), at most 128 characters")
    return run_id


class Run:
    """Handle on one run folder."""

    def __init__(self, root: Path):
        self.root = root
        self.run_id = root.name

    # --- writing -------------------------------------------------------------------------
    def set_status(self, status: str, **fields) -> dict:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        state = self.status()
        state.update(fields, status=status, updated_at=time.time())
        if status == "running":
            state.setdefault("started_at", time.time())
        atomic_write_json(self.root / "status.json", state)
        return state

    def append_metrics(self, record: dict) -> None:
        line = json.dumps(record, default=_json_default)
        with open(self.root / "metrics.jsonl", "a") as f:
            f.write(line + "\n")
            f.flush()

    def write_result(self, result: dict) -> None:
        atomic_write_json(self.root / "result.json", result)

    def path(self, name: str) -> Path:
        return self.root / name

    # --- reading -------------------------------------------------------------------------
    def config(self) -> dict:
        return _read_json(self.root / "config.json") or {}

    def status(self) -> dict:
        return _read_json(self.root / "status.json") or {"status": "queued"}

    def result(self) -> dict | None:
        return _read_json(self.root / "result.json")

    def metrics(self) -> list[dict]:
        path = self.root / "metrics.jsonl"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # torn write of a killed worker
        return out

    def summary(self) -> dict:
        st = self.status()
        return {"run_id": self.run_id, "status": st.get("status"), "pid": st.get("pid"),
                "error": st.get("error"), "config": self.config(), "history": self.metrics(),
                "result": self.result()}


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: expected JSON, found a corrupt file ({exc})") from None


class RunStore:
    """All runs under one home directory."""

    def __init__(self, home: Path | str | None = None):
        self.home = Path(home) if home is not None else kdci_home()
        self.runs_dir = self.home / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)

    def create(self, config: dict, *, name: str | None = None) -> Run:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = name or f"{stamp}-{config.get('method', 'run')}-{'kdci' if config.get('kdci') else 'base'}"
        run_id = validate_run_id(f"{base}-{secrets.token_hex(3)}" if name is None else base)
        root = self.runs_dir / run_id
        try:
            root.mkdir(parents=True)
        except FileExistsError:
            raise InputError(f"run name {run_id!r}: a run with that name already exists") from None
        run = Run(root)
        atomic_write_json(root / "config.json", config)
        run.set_status("queued", created_at=time.time())
        return run

    def get(self, run_id: str) -> Run:
        root = self.runs_dir / validate_run_id(run_id)
        if not (root / "config.json").exists():
            raise InputError(f"run id {run_id!r}: no such run in {self.runs_dir}")
        return Run(root)

    def list(self) -> list[Run]:
        runs = [Run(p) for p in self.runs_dir.iterdir() if (p / "config.json").exists()]
        return sorted(runs, key=lambda r: r.status().get("created_at", 0), reverse=True)
