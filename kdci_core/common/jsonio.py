"""Atomic file writes and tolerant JSON reads, shared by the run store and the recorders.

A whole-file write goes to a temporary name in the same folder and is renamed over the target,
so a reader (or a worker killed mid-write) never sees half a file.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from .errors import InputError


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
    tmp = temp_path(path)
    with open(tmp, "w") as f:
        f.write(text)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = temp_path(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
