"""A run's last words: where a worker that cannot write its status (a full disk) still records
how it ended, for the monitor to read.

A full disk refuses new blocks, not writes into blocks a file already has. So a worker starts by
filling ``.status.reserve`` with ``SIZE`` spaces (it has room then, or it could not have written
its status either), and a status write that fails at its end goes over those spaces in place:
one ``pwrite`` at offset 0, no new block, no rename, no temporary. Spaces are JSON whitespace, so
the record reads back as plain JSON; an all-blank file is no record. The monitor uses a record
newer than the status file (``at`` > its ``updated_at``) as the run's real end.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

RESERVE = ".status.reserve"
SIZE = 4096


def prepare(root: Path) -> None:
    """Make (or blank) the reserve; a disk already full leaves no reserve, and no partial one."""
    path = Path(root) / RESERVE
    try:
        if path.exists() and path.stat().st_size == SIZE:
            _overwrite(path, b" " * SIZE)  # blank the last run's words in place
        else:
            path.write_bytes(b" " * SIZE)
    except OSError:
        path.unlink(missing_ok=True)


def write(root: Path, record: dict) -> bool:
    """``record`` over the reserve's spaces, in place; False when there is no reserve to use."""
    path = Path(root) / RESERVE
    data = json.dumps(record, default=str).encode()
    if len(data) > SIZE:  # a long error message is cut, the record stays JSON
        record = {**record, "error": str(record.get("error"))[:SIZE // 2] + " ..."}
        record.pop("traceback", None)
        data = json.dumps(record, default=str).encode()[:SIZE]
    try:
        _overwrite(path, data.ljust(SIZE))
        return True
    except OSError:
        return False


def read(root: Path) -> dict | None:
    """The record in the reserve, None when there is none (no file, blank, or unreadable)."""
    try:
        record = json.loads(((Path(root) / RESERVE).read_bytes() or b" ").decode())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _overwrite(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)  # no O_CREAT, no O_TRUNC: the file's own blocks
    try:
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)
