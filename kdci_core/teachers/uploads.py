"""Uploaded checkpoints: size-checked, stored under ``$KDCI_HOME/uploads`` with a safe file name.

Storing only copies bytes; reading them back is :func:`~kdci_core.teachers.load_teacher`'s job
(weights-only loading, never plain unpickling).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ..common.errors import InputError
from ..common.paths import file_sha256, kdci_home
from ..models.weights import MAX_CHECKPOINT_BYTES

UPLOAD_TYPES = ["safetensors", "pt", "pth", "ts", "torchscript"]


def sanitise_name(name: str) -> str:
    """Base name only, letters/digits/``._-`` kept (others become ``_``), no leading dots."""
    base = re.split(r"[\\/]", str(name or ""))[-1]
    clean = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")
    if len(clean) > 128:
        stem, dot, suffix = clean.rpartition(".")
        keep = dot and len(suffix) < 32
        clean = stem[: 127 - len(suffix)] + dot + suffix if keep else clean[:128]
    return clean or "checkpoint"


def check_upload_size(name: str, size: int) -> None:
    """Reject an upload larger than the engine's checkpoint limit, before anything is written."""
    if size > MAX_CHECKPOINT_BYTES:
        raise InputError(f"upload {name}: expected at most {MAX_CHECKPOINT_BYTES >> 20} MiB, "
                         f"found {size / 2**20:.0f} MiB")
    if size == 0:
        raise InputError(f"upload {name}: the file is empty")


def save_upload(name: str, data: bytes, home: Path | None = None) -> tuple[Path, str]:
    """Write uploaded bytes to ``$KDCI_HOME/uploads/<sanitised name>``; return (path, sha256)."""
    check_upload_size(name, len(data))
    folder = Path(home or kdci_home()) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / sanitise_name(name)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str:
    """sha256 of a file (cache key for a checkpoint on disk)."""
    return file_sha256(path)
