"""Safe checkpoint I/O: safetensors, weights-only state dicts, TorchScript. Never plain pickle.

A user's file is untrusted: ``.pt``/``.pth`` go through ``torch.load(weights_only=True)``, which
refuses any pickle that would import or call code; TorchScript archives are read only for their
tensors. Every failure becomes an :class:`InputError` that says what the file is and why: a
rejected file is told apart by its bytes and pickle opcodes alone (nothing is unpickled) as no
checkpoint at all (corrupt, truncated, foreign) or a real pickle that asks to run code.
"""

from __future__ import annotations

import io
import json
import os
import pickletools
import zipfile
from pathlib import Path

import torch
import torch.nn as nn

from ..common.errors import InputError
from ..common.jsonio import temp_path

MAX_CHECKPOINT_BYTES = 2 * 2**30
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "student", "teacher")


def read_checkpoint(path) -> tuple[dict, dict, str]:
    """Return (state_dict, metadata, format) of a checkpoint file, validated as tensors only."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path}: expected an existing file, found nothing there")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"checkpoint {path}: the file is empty")
    if size > MAX_CHECKPOINT_BYTES:
        raise InputError(f"checkpoint {path}: expected at most {MAX_CHECKPOINT_BYTES >> 20} MiB, "
                         f"found {size >> 20} MiB")
    if path.suffix == ".safetensors":
        return (*_read_safetensors(path), "safetensors")
    try:
        if _is_torchscript(path):
            return _read_torchscript(path), {}, "torchscript"
        return _read_pickled_state_dict(path), {}, "state_dict"
    except InputError:  # rejected: say whether it is no checkpoint at all or a pickle with code
        why = not_a_checkpoint(path)
        if why is not None:
            raise InputError(f"checkpoint {path}: not a PyTorch/safetensors checkpoint: {why}. "
                             "Expected .safetensors, a torch.save state dict (.pt/.pth) or "
                             "TorchScript") from None
        raise


#: bytes of a pickle read to tell a corrupt file from a real one (the pickles of torch.save's
#: formats are small: the tensors' bytes are elsewhere)
SCAN_BYTES = 16 << 20


def _scan_pickles(blob: bytes, whole: bool, count: int) -> str | None:
    """Why ``blob`` is not a sequence of up to ``count`` pickle streams (None: it parses, or our
    window ends inside one). Decodes opcodes only (``pickletools``): nothing is unpickled."""
    f = io.BytesIO(blob)
    for _ in range(count):
        if f.tell() == len(blob):
            return None
        try:
            for _op, _arg, _pos in pickletools.genops(f):
                pass
        except ValueError as exc:
            text = str(exc)
            truncated = any(w in text for w in ("remain", "not enough data", "exhausted", "no newline"))
            if truncated and not whole:
                return None  # our window ended, not the file
            return text[:120]
    return None


def not_a_checkpoint(path) -> str | None:
    """Why the file at ``path`` cannot be a PyTorch checkpoint at all (None when it may be one:
    a zip archive or pickle stream that parses). Reads only bytes and opcodes."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            blob = f.read(SCAN_BYTES + 1)
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                pkl = [n for n in z.namelist() if n.endswith("data.pkl")]
                if not pkl:
                    return "a zip archive without the data.pkl of torch.save's format"
                with z.open(pkl[0]) as member:
                    inner = member.read(SCAN_BYTES + 1)
            why = _scan_pickles(inner[:SCAN_BYTES], len(inner) <= SCAN_BYTES, 1)
            return None if why is None else f"a zip archive whose data.pkl is no pickle stream ({why})"
    except (OSError, zipfile.BadZipFile, RuntimeError, EOFError) as exc:  # zlib errors: RuntimeError
        return f"an unreadable file or archive ({type(exc).__name__}: {str(exc)[:120]})"
    whole = len(blob) <= SCAN_BYTES
    if blob.startswith(b"PK\x03\x04"):
        return "a damaged or truncated zip archive (torch.save's format): no central directory"
    # legacy torch.save: magic number, protocol, system info, then the object: four pickles
    why = _scan_pickles(blob[:SCAN_BYTES], whole, 4)
    if why is None:
        return None
    return (f"neither a zip archive (torch.save) nor a pickle stream (legacy torch.save): {why}; "
            f"it starts with bytes {blob[:8].hex(' ') or '(none)'}")


def _read_safetensors(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            sd = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise InputError(f"checkpoint {path}: expected a safetensors file, found an unreadable one "
                         f"({type(exc).__name__}: {exc})") from None
    return sd, meta


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def _read_torchscript(path: Path) -> dict:
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise InputError(f"checkpoint {path}: looks like TorchScript but could not be read "
                         f"({type(exc).__name__}: {str(exc)[:200]})") from None
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _read_pickled_state_dict(path: Path) -> dict:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        msg = str(exc)
        if "Weights only load failed" in msg or "Unsupported global" in msg:
            first = next((ln.strip() for ln in msg.splitlines() if "Unsupported" in ln
                          or "GLOBAL" in ln), "")
            raise InputError(
                f"checkpoint {path}: refused to load: the file asks to import or run code, which a "
                f"weights-only load does not allow {('(' + first[:160] + ')') if first else ''}. "
                "Save weights only: torch.save(model.state_dict(), path), or use .safetensors"
            ) from None
        raise InputError(f"checkpoint {path}: expected a PyTorch state dict (.pt/.pth), found a "
                         f"file torch cannot read ({type(exc).__name__}: {msg[:160]})") from None
    return _unwrap_state_dict(obj, path)


def _unwrap_state_dict(obj, path) -> dict:
    if isinstance(obj, dict):
        for key in STATE_DICT_KEYS:
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise InputError(f"checkpoint {path}: expected a dict of tensors (a state dict, optionally "
                         f"under 'state_dict'), found {type(obj).__name__}")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise InputError(f"checkpoint {path}: expected a dict of tensors, found keys "
                         f"{list(obj)[:5]} with no tensor among them")
    return {k[7:] if k.startswith("module.") else k: v for k, v in tensors.items()}


def save_checkpoint(model_or_state: nn.Module | dict, path, metadata: dict | None = None) -> Path:
    """Write weights atomically: safetensors (with string metadata) or a .pt/.pth state dict."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    sd = {k: v.detach().cpu().contiguous() for k, v in sd.items()}
    tmp = temp_path(path)
    if path.suffix == ".safetensors":
        meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
        save_file(sd, str(tmp), metadata=meta)
    elif path.suffix in (".pt", ".pth"):
        torch.save({"state_dict": sd, "metadata": dict(metadata or {})}, str(tmp))
    else:
        raise InputError(f"--out {path}: expected a .safetensors, .pt or .pth file name, found "
                         f"suffix {path.suffix!r}")
    os.replace(tmp, path)
    return path
