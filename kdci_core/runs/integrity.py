"""What is wrong with a run folder, if anything: the store lists a damaged run as ``corrupt``
with these reasons instead of failing every listing because of it.

Cheap enough for every index update: JSON files are parsed, the metrics lines decoded, and of the
checkpoint only the safetensors header is read. A torn *last* metrics line is not damage (a
worker killed mid-append leaves one; a resume rewrites the file); a bad line before it is.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from ..common.errors import InputError
from ..common.jsonio import read_json

JSON_FILES = ("config.json", "status.json", "result.json", "annotations.json")
#: the resumable state of a run (recorder writes it, the worker and resume read it)
CHECKPOINT = "checkpoint.safetensors"
MAX_HEADER = 100 << 20  # a safetensors header this large is garbage, not a training state


def json_problem(path: Path) -> str | None:
    try:
        data = read_json(path)
    except InputError:
        return f"{path.name}: not valid JSON"
    except (OSError, UnicodeDecodeError) as exc:
        return f"{path.name}: unreadable ({exc})"
    if data is not None and not isinstance(data, dict):
        return f"{path.name}: expected a JSON object, found {type(data).__name__}"
    return None


def lines_problem(path: Path) -> str | None:
    if not path.exists():
        return None
    try:
        lines = path.read_bytes().decode().splitlines()
    except UnicodeDecodeError:
        return f"{path.name}: not text (binary or wrongly encoded bytes)"
    except OSError as exc:
        return f"{path.name}: unreadable ({exc})"
    for i, line in enumerate(lines[:-1], start=1):
        try:
            ok = isinstance(json.loads(line), dict)
        except json.JSONDecodeError:
            ok = False
        if not ok:
            return f"{path.name}: line {i} is not a JSON record"
    return None


def checkpoint_problem(path: Path) -> str | None:
    """The safetensors header of the checkpoint: 8 bytes of length, then that much JSON."""
    if not path.exists():
        return None
    try:
        with open(path, "rb") as f:
            size = path.stat().st_size
            head = f.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            if n <= 0 or n > MAX_HEADER or 8 + n > size:
                return f"{path.name}: not a safetensors file (truncated or garbage)"
            header = json.loads(f.read(n))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"{path.name}: unreadable header ({exc})"
    if not isinstance(header, dict) or "kdci_state" not in (header.get("__metadata__") or {}):
        return f"{path.name}: not a KDCI training state"
    return None


def problems(root: Path) -> list[str]:
    """Every damage found in the run folder ``root`` (empty: it is sound)."""
    found = [json_problem(root / name) for name in JSON_FILES]
    found += [lines_problem(root / "metrics.jsonl"), lines_problem(root / "steps.jsonl"),
              checkpoint_problem(root / CHECKPOINT)]
    return [p for p in found if p]
