"""Resumable training state in one safetensors file (no pickle anywhere).

A checkpoint is a *tree* of dicts, lists, tuples, tensors and plain scalars (the state dicts of
the student, the optimisers and the method's modules, RNG states, counters). Tensors go into
safetensors under path-like names; the tree's shape, with every dict key's type kept (optimiser
states use int keys), goes into the file's metadata as JSON. Writes are atomic.

Which method attributes are state is found by type (modules, optimisers, pools, tensors, RNG
generators, numbers, lists of tensors), so the six methods need no checkpoint code of their own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..common.errors import InputError
from ..common.faults import fault_point
from ..common.jsonio import storage_error, temp_path
from ..methods.base import SyntheticPool

_SCALARS = (int, float, bool, str, type(None))


def flatten(tree, tensors: dict[str, torch.Tensor], path: str = "t"):
    """The JSON skeleton of ``tree``; its tensors are put into ``tensors`` under unique names."""
    if isinstance(tree, torch.Tensor):
        tensors[path] = tree.detach().to("cpu").contiguous().clone()
        return {"$t": path}
    if isinstance(tree, dict):
        return {"$d": [[_key(k), flatten(v, tensors, f"{path}.{i}")] for i, (k, v) in enumerate(tree.items())]}
    if isinstance(tree, (list, tuple)):
        return {"$l" if isinstance(tree, list) else "$u": [flatten(v, tensors, f"{path}.{i}")
                                                         for i, v in enumerate(tree)]}
    if isinstance(tree, _SCALARS):
        return {"$v": tree}
    raise TypeError(f"checkpoint: cannot store a {type(tree).__name__} at {path}")


def _key(k):
    if isinstance(k, bool) or not isinstance(k, (int, str)):
        raise TypeError(f"checkpoint: dict keys must be int or str, found {k!r}")
    return ["i" if isinstance(k, int) else "s", k]


def unflatten(skeleton, tensors: dict[str, torch.Tensor]):
    if "$t" in skeleton:
        return tensors[skeleton["$t"]]
    if "$d" in skeleton:
        return {(int(k) if kind == "i" else k): unflatten(v, tensors) for (kind, k), v in skeleton["$d"]}
    if "$l" in skeleton:
        return [unflatten(v, tensors) for v in skeleton["$l"]]
    if "$u" in skeleton:
        return tuple(unflatten(v, tensors) for v in skeleton["$u"])
    return skeleton["$v"]


def save_state(tree: dict, path: Path) -> None:
    """Write ``tree`` atomically to ``path`` (safetensors + JSON skeleton in its metadata)."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten(tree, tensors)
    tmp = temp_path(path)
    try:
        save_file(tensors, str(tmp), metadata={"kdci_state": json.dumps(skeleton)})
        with open(tmp, "rb+") as f:  # on disk before the rename: a power cut keeps the old one
            os.fsync(f.fileno())
        fault_point("checkpoint_write")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise storage_error(path, exc) from None


def load_state(path: Path) -> dict:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
        return unflatten(json.loads(meta["kdci_state"]), tensors)
    except FileNotFoundError:
        raise InputError(f"checkpoint {path}: not found") from None
    except (KeyError, ValueError, OSError, SafetensorError) as exc:
        raise InputError(f"checkpoint {path}: expected a KDCI training state, found an unreadable "
                         f"or foreign file ({exc})") from None


# --- a method's state, found by type ------------------------------------------------------------
def _is_tensor_list(v) -> bool:
    return isinstance(v, (list, tuple)) and all(
        isinstance(x, torch.Tensor) or _is_tensor_list(x) for x in v)


def object_state(obj, skip: tuple = ("ctx", "p")) -> dict:
    """The resumable state of a method object: every module, optimiser, pool, tensor, RNG,
    number and list of tensors among its attributes."""
    out = {}
    for name, v in vars(obj).items():
        if name in skip or name.startswith("_"):
            continue
        if isinstance(v, (torch.nn.Module, torch.optim.Optimizer)):
            out[name] = {"kind": "state_dict", "value": v.state_dict()}
        elif isinstance(v, SyntheticPool):
            out[name] = {"kind": "pool", "value": v.data}
        elif isinstance(v, torch.Generator):
            out[name] = {"kind": "rng", "value": v.get_state()}
        elif isinstance(v, torch.Tensor) or v is None or _is_tensor_list(v) or (
                isinstance(v, (int, float, bool)) and not isinstance(v, type)):
            out[name] = {"kind": "value", "value": v}
    return out


def _to(v, device):
    if isinstance(v, torch.Tensor):
        return v.to(device)
    if isinstance(v, (list, tuple)):
        return type(v)(_to(x, device) for x in v)
    return v


def load_object_state(obj, state: dict, device) -> None:
    for name, entry in state.items():
        kind, value, current = entry["kind"], entry["value"], getattr(obj, name, None)
        if kind == "state_dict":
            current.load_state_dict(value)
        elif kind == "pool":
            current.data = None if value is None else value.to(device)
        elif kind == "rng":
            current.set_state(value)
        else:
            setattr(obj, name, _to(value, device))


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
