"""Uploaded checkpoints: size-checked, stored under ``$KDCI_HOME/uploads`` with a safe file name.

Storing only copies bytes; reading them back is :func:`~kdci_core.teachers.load_teacher`'s job
(weights-only loading, never plain unpickling, never code: TorchScript is refused).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ..common.errors import InputError
from ..common.jsonio import atomic_write_bytes, atomic_write_json, read_json
from ..common.paths import file_sha256, kdci_home
from ..models.weights import MAX_CHECKPOINT_BYTES

#: TorchScript's suffixes stay accepted by the file picker so that such a file reaches the engine
#: and the page says why it is refused (it runs code when loaded) and what to upload instead;
#: without them Streamlit only says "file type not allowed". ``onnx``: a black-box teacher
#: (``onnx_teacher``), one self-contained file (external data is not uploaded with it)
UPLOAD_TYPES = ["safetensors", "pt", "pth", "onnx", "ts", "torchscript"]


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
    """Store uploaded bytes by their content: ``$KDCI_HOME/uploads/<sha256>/<sanitised name>``.
    A second file of the same name but other bytes lands in another folder, so no upload is ever
    overwritten (runs that point at a path keep their teacher); returns (path, sha256)."""
    check_upload_size(name, len(data))
    digest = hashlib.sha256(data).hexdigest()
    folder = Path(home or kdci_home()) / "uploads" / digest
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / sanitise_name(name)
    if not path.exists():  # same name, same folder: the same bytes already
        atomic_write_bytes(path, data)
    return path, digest


def upload_record(digest: str, home: Path | None = None) -> dict | None:
    """What the dashboard stored about an upload when it validated it (arch, classes, dataset,
    data root, path), or None: lets a link ``?teacher=<sha256>`` find the teacher again."""
    return read_json(Path(home or kdci_home()) / "uploads" / str(digest) / "teacher.json") \
        if re.fullmatch(r"[0-9a-f]{64}", str(digest)) else None


def remember_upload(digest: str, record: dict, home: Path | None = None) -> None:
    atomic_write_json(Path(home or kdci_home()) / "uploads" / digest / "teacher.json", record)


def file_digest(path: Path) -> str:
    """sha256 of a file (cache key for a checkpoint on disk)."""
    return file_sha256(path)
