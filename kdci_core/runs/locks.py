"""An exclusive, re-entrant file lock, for check-then-set changes: a run's status (the state
machine of ``status.py``) and the repair of a damaged index.

``flock`` locks belong to an open file, so a second open of the same lock file in one process
would wait for the first for ever (a resume's claim that sets the status, which locks again).
So one process keeps one open file per lock path, behind a thread lock, with a depth count.
Where the lock file cannot even be opened (a read-only disk), the block runs unlocked: nothing
can be written there, so there is nothing to order. (Not the ``filelock`` package: it is not a
dependency, and it retries for ever on a file it cannot create.)
"""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager
from pathlib import Path

_guard = threading.Lock()
_held: dict[str, "_Lock"] = {}


class _Lock:
    def __init__(self):
        self.thread_lock = threading.RLock()
        self.fd: int | None = None
        self.depth = 0


def _open(path: Path) -> int | None:
    for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):  # flock works on a read-only descriptor
        try:
            return os.open(path, flags, 0o644)
        except OSError:
            continue
    return None


@contextmanager
def file_lock(path: Path):
    """Hold the exclusive lock of ``path`` (created if missing) for the block; re-entrant in the
    thread that holds it, exclusive against other threads and processes."""
    key = os.path.abspath(path)
    with _guard:
        lock = _held.setdefault(key, _Lock())
    with lock.thread_lock:
        if lock.depth == 0:
            fd = _open(Path(path))
            try:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:  # a signal while waiting: nothing is held
                os.close(fd)
                raise
            lock.fd = fd
        lock.depth += 1
        try:
            yield
        finally:
            lock.depth -= 1
            if lock.depth == 0 and lock.fd is not None:
                fd, lock.fd = lock.fd, None
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
