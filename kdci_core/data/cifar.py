"""``cifar10`` / ``cifar100``: the standard python-pickle folders, read without trusting them.

A pickle can run any code when loaded, and dataset folders are downloaded from anywhere, so the
batches go through ``RestrictedUnpickler``: it resolves only the handful of numpy globals a
plain array needs and refuses everything else (``os.system``, ``builtins.eval``...) with an
InputError naming the file and the refused global, before anything is called.

A pickle can also ask for memory it does not hold (an opcode announcing 4 GiB of bytes, a memo
slot 2**32, an empty array of a huge shape), so a batch is bounded first: its size against the
budget of :mod:`~kdci_core.common.limits`, its opcodes scanned (``common.pickle_scan``) and read
from memory, where a declared length can never exceed the file, and numpy's ``_reconstruct``
refused a shape beyond the budget.
"""

from __future__ import annotations

import codecs
import io
import math
import pickle
from functools import partial
from pathlib import Path

import numpy as np

from ..common.errors import InputError
from ..common.limits import check_inflated, max_inflated_bytes
from ..common.pickle_scan import scan_pickle
from .common import DATASETS, as_path, finish
from .transforms import chw_uint8_to_float
from .types import LabeledDataset
from .walk import contained

try:  # numpy >= 2 moved its internals to numpy._core; old pickles still name numpy.core
    from numpy._core.multiarray import _reconstruct, scalar
    from numpy._core.numeric import _frombuffer
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar
    from numpy.core.numeric import _frombuffer


def _encode(text, encoding="utf-8", errors="strict"):
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, limited to plain text codecs."""
    if not isinstance(text, str) or encoding.lower().replace("-", "") not in ("latin1", "utf8"):
        raise pickle.UnpicklingError(f"refused _codecs.encode({type(text).__name__}, {encoding!r})")
    return codecs.encode(text, encoding, errors)


class _NdarrayName:
    """What a pickle's ``numpy.ndarray`` resolves to: only ever ``_reconstruct``'s first argument
    (calling it, to allocate an array of any shape, fails)."""


def _reconstruct_bounded(subtype, shape, dtype, *, source: str, budget: int):
    """numpy's ``_reconstruct`` (the empty array a pickled array's bytes are BUILT into), refusing
    a shape whose allocation alone would exceed the budget."""
    if subtype is not _NdarrayName:
        raise pickle.UnpicklingError(f"refused _reconstruct({subtype!r}, ...)")
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    check_inflated(source, math.prod(int(d) for d in dims) * np.dtype(dtype).itemsize,
                   f"an array of shape {dims}", budget)
    return _reconstruct(np.ndarray, shape, dtype)


_ALLOWED = {("numpy", "ndarray"): _NdarrayName, ("numpy", "dtype"): np.dtype,
            ("_codecs", "encode"): _encode}
for _mod in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_mod}.multiarray", "_reconstruct")] = _reconstruct_bounded
    _ALLOWED[(f"{_mod}.multiarray", "scalar")] = scalar
    _ALLOWED[(f"{_mod}.numeric", "_frombuffer")] = _frombuffer


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that builds only numpy arrays, numbers, strings, bytes, lists and dicts.

    Defaults to ``encoding="bytes"`` because the original CIFAR files are Python 2 pickles.
    """

    def __init__(self, file, *, source: str | None = None, encoding: str = "bytes",
                 budget: int | None = None, **kwargs):
        super().__init__(file, encoding=encoding, **kwargs)
        self.source = source or getattr(file, "name", "<pickle>")
        self.budget = max_inflated_bytes() if budget is None else budget

    def find_class(self, module: str, name: str):
        try:
            found = _ALLOWED[(module, name)]
        except KeyError:
            raise InputError(
                f"{self.source}: refused to load global {module}.{name}: a dataset pickle may "
                f"hold only numpy arrays, numbers, strings, lists and dicts (this file would "
                f"run code when loaded)") from None
        if found is _reconstruct_bounded:
            return partial(found, source=self.source, budget=self.budget)
        return found


def read_pickle(path: Path) -> dict:
    """One batch file as a dict: its size checked against the budget, its opcodes scanned, then
    through the restricted unpickler from memory; any damage is an InputError."""
    budget = max_inflated_bytes()
    try:
        check_inflated(path, path.stat().st_size, "the file", budget)
        blob = path.read_bytes()
        scan_pickle(io.BytesIO(blob), max_ops=budget // 256)
        obj = RestrictedUnpickler(io.BytesIO(blob), source=str(path), budget=budget).load()
    except InputError:
        raise
    except Exception as exc:  # truncated/garbage pickles raise many types; all mean "corrupt"
        raise InputError(f"{path}: expected a CIFAR python pickle, found an unreadable file "
                         f"({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}: expected a pickled dict, found {type(obj).__name__}")
    return obj


def _get(d: dict, key: str, path: Path):
    """Accept both bytes keys (the Python 2 originals) and str keys (re-pickled copies)."""
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    found = ", ".join(sorted(k.decode() if isinstance(k, bytes) else str(k) for k in d))
    raise InputError(f"{path}: expected key {key!r}, found keys: {found}")


def _text(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 N x 3 x 32 x 32, int64 N) from one batch file, with shapes and labels checked."""
    d = read_pickle(path)
    data, labels = _get(d, "data", path), _get(d, label_key, path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        found = (f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray)
                 else type(data).__name__)
        raise InputError(f"{path}: expected 'data' as a uint8 array N x 3072, found {found}")
    try:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"{path}: expected {label_key!r} as a list of integers") from None
    if labels.shape[0] != data.shape[0]:
        raise InputError(f"{path}: expected {data.shape[0]} labels (one per image), "
                         f"found {labels.shape[0]}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise InputError(f"{path}: expected labels 0..{num_classes - 1}, found "
                         f"{int(labels.min())}..{int(labels.max())}")
    return data.reshape(-1, 3, 32, 32), labels


SPECS = {
    "cifar10": dict(folder="cifar-10-batches-py",
                    train=[f"data_batch_{i}" for i in range(1, 6)], test=["test_batch"],
                    meta="batches.meta", names_key="label_names", label_key="labels",
                    num_classes=10,
                    # The statistics of the CMI/Fast-Datafree code the paper builds on, so that
                    # the paper's pretrained CIFAR teachers see the inputs they were trained on.
                    mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010)),
    "cifar100": dict(folder="cifar-100-python", train=["train"], test=["test"], meta="meta",
                     names_key="fine_label_names", label_key="fine_labels", num_classes=100,
                     mean=(0.5071, 0.4867, 0.4408), std=(0.2675, 0.2565, 0.2761)),
}


def find_dir(root, spec: dict, name: str) -> Path:
    """``root`` itself or ``root/<standard folder>``, whichever holds every expected file."""
    base = as_path(root, f"{name}: the folder {spec['folder']} (or its parent)")
    files = spec["train"] + spec["test"] + [spec["meta"]]
    looked = []
    for d in (base, base / spec["folder"]):
        missing = [f for f in files if not (d / f).is_file()]
        if not missing:
            for f in files:  # a file that is a link out of its folder is not read
                contained(d / f, d, name)
            return d
        state = "does not exist" if not d.is_dir() else f"missing {', '.join(missing)}"
        looked.append(f"  {d} ({state})")
    raise InputError(f"{name}: expected the standard python folder {spec['folder']}/ with "
                     f"{', '.join(files)}. Looked in:\n" + "\n".join(looked))


def _load(name: str, root, image_size, in_channels, mean, std) -> LabeledDataset:
    spec = SPECS[name]
    folder = find_dir(root, spec, name)
    meta_path = folder / spec["meta"]
    names = [_text(v) for v in _get(read_pickle(meta_path), spec["names_key"], meta_path)]
    if len(names) != spec["num_classes"]:
        raise InputError(f"{meta_path}: expected {spec['num_classes']} class names, "
                         f"found {len(names)}")
    splits = []
    for files in (spec["train"], spec["test"]):
        parts = [_batch(folder / f, spec["label_key"], spec["num_classes"]) for f in files]
        splits.append((np.concatenate([p[0] for p in parts]),
                       np.concatenate([p[1] for p in parts])))
    (train_x, train_y), (test_x, test_y) = splits
    return finish(name, train=chw_uint8_to_float(train_x), train_labels=train_y,
                  test=chw_uint8_to_float(test_x), test_labels=test_y, class_names=names,
                  source=str(folder), image_size=image_size, in_channels=in_channels,
                  mean=spec["mean"], std=spec["std"], norm_mean=mean, norm_std=std,
                  augment="crop-flip")  # the references' CIFAR train transform (crop 4 px, flip)


@DATASETS.register("cifar10")
def load_cifar10(root=None, *, image_size=None, in_channels=None, mean=None,
                 std=None) -> LabeledDataset:
    """50,000 / 10,000 RGB 32x32 images, 10 classes, from ``cifar-10-batches-py``."""
    return _load("cifar10", root, image_size, in_channels, mean, std)


@DATASETS.register("cifar100")
def load_cifar100(root=None, *, image_size=None, in_channels=None, mean=None,
                  std=None) -> LabeledDataset:
    """50,000 / 10,000 RGB 32x32 images, 100 fine classes, from ``cifar-100-python``."""
    return _load("cifar100", root, image_size, in_channels, mean, std)
