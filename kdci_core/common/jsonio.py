"""Atomic file writes, whole-line appends and tolerant JSON reads, shared by the run store and
the recorders.

A whole-file write goes to a temporary name in the same folder and is renamed over the target,
so a reader (or a worker killed mid-write) never sees half a file; a write that fails (a full or
read-only disk) leaves no temporary and raises a StorageError naming the file and the cause.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path

from .errors import InputError, StorageError

#: what an OSError's errno means to someone who must free the disk or fix a mount
_CAUSES = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
           errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
           errno.EPERM: "permission denied"}


def storage_error(path: Path, exc: OSError) -> StorageError:
    """A one-line StorageError for a failed write of ``path``: the file, the cause, and that the
    previous version (if any) is intact, since every whole-file write goes through a rename."""
    cause = _CAUSES.get(getattr(exc, "errno", None), exc.strerror or str(exc))
    return StorageError(f"{path}: could not write it ({cause}: {exc.strerror or exc}); the previous "
                        "version of the file, if any, and every other file are unchanged")


def json_default(o):
    """``json.dump`` fallback: arrays and tensors as lists, paths as strings."""
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def temp_path(path: Path) -> Path:
    """A temporary sibling of ``path`` unique to this process and thread (renamed over ``path``
    when done): a worker's heartbeat thread and its main thread, or two dashboard sessions, may
    write the same file at once, and a shared temporary name loses one rename."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def atomic_write_text(path: Path, text: str, *, fsync: bool = False) -> None:
    _atomic_write(Path(path), text.encode(), fsync)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(Path(path), data, True)


def _atomic_write(path: Path, data: bytes, fsync: bool) -> None:
    """Write a temporary sibling, then rename it over ``path``; a failed write (full or read-only
    disk) removes the temporary file and raises a StorageError, the old file untouched."""
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise storage_error(path, exc) from None


def append_line(path: Path, line: bytes) -> None:
    """``line`` at the end of ``path`` by a single ``write`` to an O_APPEND file: a reader sees the
    whole line or (a process killed mid-write) a torn one it can skip. A write the disk cuts
    short is cut back off (truncating needs no room), so no torn line sits before a later one;
    then a StorageError."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise storage_error(path, exc) from None
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            if os.write(fd, line) != len(line):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as exc:
            os.ftruncate(fd, start)
            raise storage_error(path, exc) from None
    finally:
        os.close(fd)


def atomic_write_json(path: Path, obj) -> None:
    """``obj`` as indented JSON at ``path``, flushed to disk before the rename."""
    atomic_write_text(path, json.dumps(obj, indent=2, default=json_default), fsync=True)


def read_json(path: Path):
    """The JSON at ``path``, None when the file is missing; a corrupt file is an InputError."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: expected JSON, found a corrupt file ({exc})") from None
