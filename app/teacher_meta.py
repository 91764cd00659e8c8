"""What a teacher file says about itself, for the Teacher page to fill its form with: the dataset,
architecture, class count and input (size, channels, mean, std) recorded in a sidecar JSON
beside it (``teacher.safetensors.json``, the engine's ``read_sidecar``) or in the metadata our
own ``teacher train`` writes into a ``.safetensors`` header. Without this a Fashion-MNIST
teacher uploaded while the form said "digits" was scored on digits, at chance.

Reading only: the header is checked before it is parsed (``check_safetensors``), every value
by the engine's own parser (``input_spec.parse_fields``), so a bad one is an InputError naming
the file and the key.
"""

from __future__ import annotations

import json
from pathlib import Path

from kdci_core.common.errors import InputError
from kdci_core.teachers.input_spec import (FIELDS, MAX_SIDECAR_BYTES, SIDECAR_EXTRA, parse_fields,
                                          read_sidecar, sidecar_path, write_sidecar)

#: what a file can record, in the order the page lists it
RECORDED = ("dataset", "arch", "num_classes", *FIELDS)
#: keys stored as plain text (``models.weights.save_checkpoint`` writes strings as they are)
_TEXT = ("arch", "dataset")


def header_metadata(path) -> dict:
    """The recorded keys of a ``.safetensors`` file's header (``teacher train`` writes them),
    parsed and checked; {} for another format or a header without them."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return {}
    from kdci_core.models.checkpoint_files import safetensors_metadata

    meta = safetensors_metadata(path)
    values = {}
    for key in RECORDED:
        if key in meta:
            try:
                values[key] = json.loads(meta[key])
            except ValueError:
                if key not in _TEXT:
                    raise InputError(f"checkpoint {path.name} metadata: key {key!r}: expected JSON, "
                                     f"found {meta[key][:40]!r}") from None
                values[key] = meta[key]
    return parse_fields(values, f"checkpoint {path.name} metadata")


def recorded_fields(path) -> dict[str, tuple]:
    """``{key: (value, where it was read)}`` for each recorded key, the sidecar first (as the
    engine's input spec orders them), then the checkpoint's own metadata."""
    name = Path(path).name
    sources = ((f"sidecar {sidecar_path(name).name}", read_sidecar(path) or {}),
               (f"checkpoint metadata of {name}", header_metadata(path)))
    out: dict[str, tuple] = {}
    for label, values in sources:
        for key in RECORDED:
            if values.get(key) is not None:
                out.setdefault(key, (values[key], label))
    return out


def save_sidecar(teacher, name: str, data: bytes) -> Path:
    """An uploaded sidecar, checked (size, a JSON object, every known key by the engine's parser)
    and written beside the stored teacher as ``<teacher file>.json``, where every reader of the
    teacher's input spec (pages, runs, the command line) finds it; unknown keys are dropped."""
    where = f"sidecar {name}"
    if len(data) > MAX_SIDECAR_BYTES:
        raise InputError(f"{where}: expected at most {MAX_SIDECAR_BYTES // 1024} KiB of JSON, "
                         f"found {len(data):,} bytes")
    try:
        values = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{where}: expected a JSON object, found no JSON ({str(exc)[:80]})") from None
    if not isinstance(values, dict):
        raise InputError(f"{where}: expected a JSON object, found {type(values).__name__}")
    known = {k: values[k] for k in (*FIELDS, *SIDECAR_EXTRA) if k in values}
    parse_fields(known, where)  # named as the user named it, before anything is written
    return write_sidecar(teacher, known)


def describe_recorded(recorded: dict) -> str:
    """``dataset fashion-mnist, architecture lenet5, 10 classes, 28 px, 1 channel(s)`` (the
    fields found), for the page's note."""
    words = {"dataset": "dataset {}", "arch": "architecture {}", "num_classes": "{} classes",
             "image_size": "{} px", "in_channels": "{} channel(s)",
             "mean": "mean {}", "std": "std {}"}
    parts = []
    for key in RECORDED:
        if key in recorded:
            value = recorded[key][0]
            if isinstance(value, (list, tuple)):
                value = "[" + ", ".join(f"{v:g}" for v in value) + "]"
            parts.append(words[key].format(value))
    return ", ".join(parts)
