"""Safe checkpoint I/O: safetensors and weights-only state dicts. Never plain pickle, never code.

A user's file is untrusted. Before anything is read, :mod:`.checkpoint_files` judges it from its
bytes, zip directory and pickle opcodes: TorchScript and torch.export archives (which run code
when loaded) are refused, and so is a file that declares more memory than the budget of
:mod:`~kdci_core.common.limits`. ``.pt``/``.pth`` then go through
``torch.load(weights_only=True)``, which refuses any pickle that would import or call code.
Every failure is an :class:`InputError` that says what the file is and why.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn as nn

from ..common.errors import InputError
from ..common.jsonio import temp_path
from .checkpoint_files import check_safetensors, check_torch_file

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
        check_safetensors(path)
        return (*_read_safetensors(path), "safetensors")
    check_torch_file(path)
    return _read_pickled_state_dict(path), {}, "state_dict"


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
    """The state dict inside ``obj`` (under one of ``STATE_DICT_KEYS``, or ``obj`` itself),
    tensors only, each key without the prefixes wrappers add: ``module.`` (DataParallel,
    DistributedDataParallel), ``_orig_mod.`` (torch.compile)."""
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
    prefixes = ("module.", "_orig_mod.")

    def unprefixed(key: str) -> str:
        while key.startswith(prefixes):
            key = key.split(".", 1)[1]
        return key
    return {unprefixed(k): v for k, v in tensors.items()}


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
