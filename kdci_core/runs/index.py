"""SQLite index of the run store: one row per run for fast listing, sorting and filtering.

The run folders are the truth; the index is a cache of their summaries, updated by every status
change and result, and rebuilt from the folders when missing, asked (``rebuild``) or damaged.
SQLite in WAL mode lets many worker processes write while the dashboard reads.

A cache never fails a run or a listing: an index file that is not a database any more (garbage
written over it, a torn copy) is moved aside to ``index.sqlite.corrupt-<time>``, said once (a
warning), and rebuilt from the folders; an index that cannot be written (a full or read-only
disk) is kept in memory for this process, filled from the folders, so listings go on.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import warnings
from contextlib import closing
from pathlib import Path
from typing import Callable

from .locks import file_lock

COLUMNS = ("run_id", "name", "status", "method", "kdci", "dataset", "student", "seed", "k",
           "ablation", "created_at", "updated_at", "pid", "host", "backend", "student_accuracy",
           "teacher_accuracy", "last_epoch", "epochs", "error", "config", "started_at",
           "finished_at", "wall_time_s", "teacher_sha256", "tags", "notes", "top_class", "top_share")
JSON_COLUMNS = ("config", "tags")
_SCHEMA = f"""CREATE TABLE IF NOT EXISTS runs ({", ".join(
    c + (" TEXT PRIMARY KEY" if c == "run_id" else "") for c in COLUMNS)})"""
SORTABLE = {c for c in COLUMNS if c not in JSON_COLUMNS}
#: SQLite's primary result codes: another writer holds the file (wait and retry) / the file is
#: not a sound database (move it aside, rebuild); anything else (full, read-only, cannot open):
#: the index goes to memory
_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
_DAMAGED = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_TRIES = 5
#: index path -> its ``held`` states (see RunIndex.held)
_HELD: dict[str, dict] = {}


def _code(exc: sqlite3.Error) -> int:
    return (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF


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
        #: or a damaged file moved aside; the store refills it from the folders
        self.recreated = False
        #: refills the index from the run folders after a repair in use (the store sets it to its
        #: ``rebuild_index``; a repair while opening sets ``recreated`` and the store refills it)
        self.refill: Callable[[], object] | None = None
        self._refilling = False
        #: run id -> (the status file's ``updated_at``, the state this process decided for it but
        #: could not write: a full disk); ``Run.status`` and ``query`` show it while the file (and
        #: the row) is unchanged. Never written to the file: the folders stay the truth. Shared by
        #: every index of this file in the process (a page opens several stores per rerun)
        self.held: dict[str, tuple[float | None, dict]] = _HELD.setdefault(str(Path(path).absolute()), {})
        try:
            self._create()
        except sqlite3.Error as exc:
            self._recover(exc)

    def _create(self) -> None:
        with closing(self._connect()) as db, db:
            have = [r[1] for r in db.execute("PRAGMA table_info(runs)")]
            if have and tuple(have) != COLUMNS:
                db.execute("DROP TABLE runs")
            self.recreated = self.recreated or tuple(have) != COLUMNS
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

    def _run(self, work: Callable[[sqlite3.Connection], object]):
        """``work(db)`` in one transaction: retried while another writer holds the file (then
        the OperationalError), and once more after a repair (``_recover``) when the file is
        damaged or cannot be used; a second failure after a repair goes to memory."""
        waits, repaired = 0, False
        while True:
            try:
                with closing(self._connect()) as db, db:
                    return work(db)
            except sqlite3.Error as exc:
                if self.memory is not None:
                    raise
                if _code(exc) in _BUSY:
                    waits += 1
                    if waits >= _TRIES:
                        raise
                    time.sleep(0.2 * waits)
                    continue
                if repaired:
                    self._to_memory(exc)
                    self._refill()
                else:
                    self._recover(exc)
                repaired = True

    def _recover(self, exc: sqlite3.Error) -> None:
        """A damaged file is moved aside and a new one made; one that cannot be used goes to
        memory (said once). Either way the index is refilled from the folders."""
        if _code(exc) in _DAMAGED and self._quarantine(exc):
            try:
                self._create()
            except sqlite3.Error as again:
                self._to_memory(again)
        else:
            self._to_memory(exc)
        self.recreated = True
        self._refill()

    def _refill(self) -> None:
        if self.refill is not None and not self._refilling:
            self._refilling = True
            try:
                self.refill()
            finally:
                self._refilling = False

    def _to_memory(self, exc: sqlite3.Error) -> None:
        warnings.warn(f"run index {self.path}: cannot use the file ({exc}); indexing the run folders "
                      "in memory for this process", stacklevel=3)
        self.memory = _Kept(sqlite3.connect(":memory:", check_same_thread=False))
        self._create()

    def _quarantine(self, exc: sqlite3.Error) -> bool:
        """Move a damaged index file aside (under a lock, so that of several processes that see
        the damage one moves it); False when it cannot be moved (a read-only disk)."""
        with file_lock(self.path.with_name(self.path.name + ".lock")):
            if not self.path.exists() or _sound(self.path):
                return True  # another process has already moved it aside (and made a new one)
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            n = 1
            while aside.exists():
                n += 1
                aside = aside.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
            try:
                os.replace(self.path, aside)
            except OSError:
                return False
            for suffix in ("-wal", "-shm"):  # the damaged file's journal is not the new one's
                try:
                    os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
                except OSError:
                    pass
        warnings.warn(f"run index {self.path}: not a readable database ({exc}); moved it to "
                      f"{aside.name} and rebuilt the index from the run folders", stacklevel=4)
        return True

    def upsert(self, row: dict) -> None:
        row = {c: row.get(c) for c in COLUMNS}
        for c in JSON_COLUMNS:
            row[c] = json.dumps(row[c]) if row[c] is not None else None
        cols, marks = ", ".join(COLUMNS), ", ".join("?" for _ in COLUMNS)
        try:
            self._run(lambda db: db.execute(f"INSERT OR REPLACE INTO runs ({cols}) VALUES ({marks})",
                                            [row[c] for c in COLUMNS]))
        except sqlite3.Error as exc:  # locked beyond the retries: the folder stays the truth and
            # listings repair the row (reconcile) or rebuild the index
            warnings.warn(f"run index {self.path}: could not record {row['run_id']} ({exc})", stacklevel=2)

    def delete(self, run_id: str) -> None:
        self._run(lambda db: db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,)))

    def query(self, *, status: str | None = None, method: str | None = None,
              dataset: str | None = None, text: str | None = None, tag: str | None = None,
              sort: str = "created_at",
              descending: bool = True, limit: int | None = None) -> list[dict]:
        where, args = [], []
        for col, value in (("method", method), ("dataset", dataset)):
            if value:
                where.append(f"{col} = ?")
                args.append(value)
        if text:  # the id, the name, a tag or the notes
            where.append("(run_id LIKE ? OR name LIKE ? OR tags LIKE ? OR notes LIKE ?)")
            args += [f"%{text}%"] * 4
        if tag:
            where.append("tags LIKE ?")
            args.append(f"%{json.dumps(tag)}%")
        if status and not self.held:
            where.append("status = ?")
            args.append(status)
        if sort not in SORTABLE:
            sort = "created_at"
        sql = f"SELECT {', '.join(COLUMNS)} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {sort} {'DESC' if descending else 'ASC'}, run_id"
        if limit and not self.held:
            sql += f" LIMIT {int(limit)}"
        out = []
        for r in self._run(lambda db: db.execute(sql, args).fetchall()):
            d = self._overlay(dict(zip(COLUMNS, r)))
            d["config"] = json.loads(d["config"]) if d["config"] else {}
            d["tags"] = json.loads(d["tags"]) if d["tags"] else []
            d["kdci"] = bool(d["kdci"]) if d["kdci"] is not None else None
            if not status or d["status"] == status:  # filtered here when a held state may change it
                out.append(d)
        return out[:limit] if limit else out

    def _overlay(self, row: dict) -> dict:
        """The row with the state this process holds for its run (``held``), if the row is
        still the one that state was decided on."""
        held = self.held.get(row["run_id"])
        if held and held[0] == row["updated_at"]:
            state = held[1]
            row.update({c: state.get(c) for c in ("status", "error", "pid", "updated_at", "finished_at")})
        return row

    def ids_named(self, name: str) -> list[str]:
        """The ids of the runs labelled ``name`` (exactly, as stored: NFC)."""
        return [r[0] for r in self._run(lambda db: db.execute(
            "SELECT run_id FROM runs WHERE name = ? ORDER BY run_id", (name,)).fetchall())]

    def run_ids(self) -> set[str]:
        return {r[0] for r in self._run(lambda db: db.execute("SELECT run_id FROM runs").fetchall())}


def _sound(path: Path) -> bool:
    """Whether the file at ``path`` opens as a database that passes SQLite's quick check."""
    try:
        with closing(sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True,
                                       timeout=30)) as db:
            return db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    except sqlite3.Error:
        return False
