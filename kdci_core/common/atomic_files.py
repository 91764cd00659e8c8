"""Files a user keeps (reports, exported models) replaced in one step: written under a temporary
name in the same folder (``jsonio.temp_path``), renamed over the target when complete.

A writer killed or failing mid-write leaves the previous file intact: an exception removes the
temporary at once; a SIGKILL cannot, so the next write of the same target sweeps the temporaries
of processes that no longer exist. A writer that makes several files (ONNX with its external
weights) gets a temporary folder; its files are moved into place with the named one last.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .jsonio import storage_error, temp_path

#: ``temp_path``'s name: ``.<name>.<pid>.<thread>.tmp``
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.\d+\.tmp$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def sweep_stale(path: Path) -> list[Path]:
    """Remove the temporaries of ``path`` left by dead processes (a kill mid-write); returns them."""
    path = Path(path)
    gone = []
    if not path.parent.is_dir():
        return gone
    for p in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        m = _TEMP.match(p.name)
        if m and m["name"] == path.name and int(m["pid"]) != os.getpid() and not _alive(int(m["pid"])):
            _remove(p)
            gone.append(p)
    return gone


@contextmanager
def replacing(path: Path | str) -> Iterator[Path]:
    """``with replacing(out) as tmp: write tmp`` -> ``tmp`` renamed over ``out`` when the block
    ends normally; removed on any exception (the old ``out`` untouched)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, OSError):
            raise storage_error(path, exc) from None
        raise


def write_text(path: Path | str, text: str) -> Path:
    """``text`` at ``path``, replaced in one step (UTF-8)."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


@contextmanager
def replacing_group(path: Path | str) -> Iterator[Path]:
    """``with replacing_group(out) as folder: write folder / out.name (and any files beside it)``
    -> each file moved beside ``out``, ``out`` itself last; the folder removed in any case.
    Yields the temporary folder (same file system as ``out``, so every move is a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    folder = temp_path(path)
    folder.mkdir()
    try:
        yield folder
        main = folder / path.name
        if not main.is_file():
            raise FileNotFoundError(f"the writer made no {path.name}")
        for f in sorted(folder.iterdir(), key=lambda f: f.name == path.name):
            os.replace(f, path.parent / f.name)
    except OSError as exc:
        raise storage_error(path, exc) from None
    finally:
        _remove(folder)
