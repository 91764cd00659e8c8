"""SQLite index of the run store: one row per run for fast listing, sorting and filtering.

The run folders are the truth; the index is a cache of their summaries, updated by every status
change and result, and rebuilt from the folders when missing or asked (``rebuild``). SQLite in
WAL mode lets many worker processes write while the dashboard reads.
"""

from __future__ import annotations

import json
import sqlite3
import time
import warnings
from contextlib import closing
from pathlib import Path

COLUMNS = ("run_id", "name", "status", "method", "kdci", "dataset", "student", "seed", "k",
           "ablation", "created_at", "updated_at", "pid", "host", "backend", "student_accuracy",
           "teacher_accuracy", "last_epoch", "epochs", "error", "config", "started_at",
           "finished_at", "wall_time_s", "teacher_sha256", "tags", "notes")
JSON_COLUMNS = ("config", "tags")
_SCHEMA = f"""CREATE TABLE IF NOT EXISTS runs ({", ".join(
    c + (" TEXT PRIMARY KEY" if c == "run_id" else "") for c in COLUMNS)})"""
SORTABLE = {c for c in COLUMNS if c not in JSON_COLUMNS}


class _Kept:
    """The in-memory index's one connection, which ``closing`` must not close."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __getattr__(self, name):
        return getattr(self.db, name)

    def __enter__(self):
        return self.db.__enter__()

    def __exit__(self, *exc):
        return self.db.__exit__(*exc)

    def close(self) -> None:
        pass


class RunIndex:
    def __init__(self, path: Path):
        self.path = path
        #: the index lives in memory for this process when its file cannot be opened or written
        #: (a full or read-only disk): listings keep working, read from the folders
        self.memory: _Kept | None = None
        #: True when the table was (re)created: an index of an older release, with other columns,
        #: is dropped (it is only a cache) and the store refills it from the folders
        self.recreated = False
        try:
            self._create()
        except sqlite3.Error as exc:
            warnings.warn(f"run index {path}: cannot use the file ({exc}); indexing the run folders "
                          "in memory for this process", stacklevel=2)
            self.memory = _Kept(sqlite3.connect(":memory:", check_same_thread=False))
            self._create()

    def _create(self) -> None:
        with closing(self._connect()) as db, db:
            have = [r[1] for r in db.execute("PRAGMA table_info(runs)")]
            if have and tuple(have) != COLUMNS:
                db.execute("DROP TABLE runs")
            self.recreated = tuple(have) != COLUMNS
            db.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        if self.memory is not None:
            return self.memory
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error:
            db.close()
            raise
        return db

    def upsert(self, row: dict) -> None:
        row = {c: row.get(c) for c in COLUMNS}
        for c in JSON_COLUMNS:
            row[c] = json.dumps(row[c]) if row[c] is not None else None
        cols = ", ".join(COLUMNS)
        marks = ", ".join("?" for _ in COLUMNS)
        for attempt in range(5):
            try:
                with closing(self._connect()) as db, db:
                    db.execute(f"INSERT OR REPLACE INTO runs ({cols}) VALUES ({marks})",
                               [row[c] for c in COLUMNS])
                return
            except sqlite3.OperationalError as exc:  # locked beyond the timeout: retry a few times
                error = exc
                time.sleep(0.2 * (attempt + 1))
        # the folder stays the truth: listings repair the row (reconcile) or rebuild the index
        warnings.warn(f"run index {self.path}: could not record {row['run_id']} ({error})", stacklevel=2)

    def delete(self, run_id: str) -> None:
        with closing(self._connect()) as db, db:
            db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))

    def query(self, *, status: str | None = None, method: str | None = None,
              dataset: str | None = None, text: str | None = None, tag: str | None = None,
              sort: str = "created_at",
              descending: bool = True, limit: int | None = None) -> list[dict]:
        where, args = [], []
        for col, value in (("status", status), ("method", method), ("dataset", dataset)):
            if value:
                where.append(f"{col} = ?")
                args.append(value)
        if text:  # the id, the name, a tag or the notes
            where.append("(run_id LIKE ? OR name LIKE ? OR tags LIKE ? OR notes LIKE ?)")
            args += [f"%{text}%"] * 4
        if tag:
            where.append("tags LIKE ?")
            args.append(f"%{json.dumps(tag)}%")
        if sort not in SORTABLE:
            sort = "created_at"
        sql = f"SELECT {', '.join(COLUMNS)} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {sort} {'DESC' if descending else 'ASC'}, run_id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        with closing(self._connect()) as db:
            rows = db.execute(sql, args).fetchall()
        out = []
        for r in rows:
            d = dict(zip(COLUMNS, r))
            d["config"] = json.loads(d["config"]) if d["config"] else {}
            d["tags"] = json.loads(d["tags"]) if d["tags"] else []
            d["kdci"] = bool(d["kdci"]) if d["kdci"] is not None else None
            out.append(d)
        return out

    def ids_named(self, name: str) -> list[str]:
        """The ids of the runs labelled ``name`` (exactly, as stored: NFC)."""
        with closing(self._connect()) as db:
            return [r[0] for r in db.execute("SELECT run_id FROM runs WHERE name = ? ORDER BY run_id", (name,))]

    def run_ids(self) -> set[str]:
        with closing(self._connect()) as db:
            return {r[0] for r in db.execute("SELECT run_id FROM runs")}
