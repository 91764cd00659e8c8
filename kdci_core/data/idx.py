"""``fashion-mnist``: the four original IDX ``.gz`` files, parsed with numpy only.

Looked for in the folder the user gives (or its ``fashion-mnist/`` sub-folder), then where
Debian's ``dataset-fashion-mnist`` package installs them. Every header field is checked, so a
wrong or damaged file is an InputError naming it rather than a reshape error deep inside numpy,
and nothing is inflated beyond what the header declares and the memory budget allows.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from ..common.errors import InputError
from ..common.limits import check_inflated
from .common import DATASETS, finish
from .transforms import uint8_to_float
from .types import LabeledDataset
from .walk import contained

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
# Module-level so tests (and packagers) can point it elsewhere.
SYSTEM_DIRS = [Path("/usr/share/datasets/fashion-mnist")]
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MEAN, STD = (0.2860,), (0.3530,)
_UBYTE = 0x08  # IDX type code of unsigned bytes, the only one Fashion-MNIST uses


def candidate_dirs(root) -> list[Path]:
    """Every folder looked in, in order: root, root/fashion-mnist, then the system folders."""
    dirs: list[Path] = []
    if root is not None and str(root).strip():
        r = Path(root).expanduser()
        dirs += [r, r / "fashion-mnist"]
    return dirs + [Path(d) for d in SYSTEM_DIRS]


def find_dir(root) -> Path:
    """The first candidate folder holding all four files, else an InputError naming each looked in."""
    looked = []
    for d in candidate_dirs(root):
        missing = [f for f in FILES.values() if not (d / f).is_file()]
        if not missing:
            for f in FILES.values():  # a file that is a link out of its folder is not read
                contained(d / f, d, "fashion-mnist")
            return d
        state = "does not exist" if not d.is_dir() else f"missing {', '.join(missing)}"
        looked.append(f"  {d} ({state})")
    raise InputError(
        "fashion-mnist: the IDX files were not found. Expected the four files "
        f"{', '.join(FILES.values())} in one folder. Looked in:\n" + "\n".join(looked) +
        "\nPass that folder (or its parent holding fashion-mnist/) as the data root, or on "
        "Debian/Ubuntu run: apt-get install dataset-fashion-mnist")


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse one gzip-compressed IDX file of unsigned bytes with ``ndim`` dimensions, bounded:
    the header is inflated first, its dimensions (Python ints: no overflow) are checked against
    the memory budget, then exactly that many bytes (+1, to detect trailing data) are inflated,
    in the gzip reader's own bounded chunks. A 2 MB gzip of zeros never becomes 2 GB."""
    header = 4 + 4 * ndim
    try:
        with gzip.open(path, "rb") as f:
            head = f.read(header)
            dims = _check_header(path, head, ndim)
            expected = math.prod(dims)
            check_inflated(path, expected, f"its header's dimensions {dims}")
            raw = f.read(expected + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: expected a complete gzip-compressed IDX file, found a "
                         f"truncated or corrupt one ({exc})") from None
    if len(raw) != expected:
        found = (f"{len(raw)} data bytes (truncated or corrupt)" if len(raw) < expected else
                 "more data bytes after them (trailing data: a damaged or crafted file)")
        raise InputError(f"{path}: header says dimensions {dims} ({expected} data bytes), "
                         f"found {found}")
    return np.frombuffer(raw, dtype=np.uint8).reshape(dims)


def _check_header(path: Path, head: bytes, ndim: int) -> list[int]:
    """The dimensions of an IDX header of unsigned bytes with ``ndim`` dimensions."""
    if len(head) >= 4 and head[:4] != bytes([0, 0, _UBYTE, ndim]):
        raise InputError(f"{path}: expected IDX magic number {(_UBYTE << 8) | ndim:#010x} "
                         f"(unsigned bytes, {ndim} dimensions), found "
                         f"{int.from_bytes(head[:4], 'big'):#010x}")
    if len(head) < 4 + 4 * ndim:
        raise InputError(f"{path}: expected an IDX header of {4 + 4 * ndim} bytes, "
                         f"found {len(head)} bytes")
    dims = [int.from_bytes(head[4 + 4 * i: 8 + 4 * i], "big", signed=True) for i in range(ndim)]
    if min(dims) < 0:
        raise InputError(f"{path}: expected non-negative dimensions in the IDX header, found {dims}")
    return dims


def _read_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_path, labels_path = folder / FILES[f"{split}_images"], folder / FILES[f"{split}_labels"]
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if images.shape[0] != labels.shape[0]:
        raise InputError(f"{labels_path}: expected {images.shape[0]} labels (one per image in "
                         f"{images_path.name}), found {labels.shape[0]}")
    if images.shape[0] == 0:
        raise InputError(f"{images_path}: expected at least one image, found none")
    if labels.size and int(labels.max()) >= len(CLASS_NAMES):
        raise InputError(f"{labels_path}: expected labels 0..{len(CLASS_NAMES) - 1}, "
                         f"found {int(labels.max())}")
    return images, labels


@DATASETS.register("fashion-mnist")
def load(root=None, *, image_size=None, in_channels=None, mean=None, std=None) -> LabeledDataset:
    """60,000 train / 10,000 test grey 28x28 images, 10 classes; the files' own split."""
    folder = find_dir(root)
    train_x, train_y = _read_split(folder, "train")
    test_x, test_y = _read_split(folder, "test")
    if train_x.shape[1:] != test_x.shape[1:]:
        raise InputError(f"{folder}: expected train and test images of the same size, found "
                         f"{tuple(train_x.shape[1:])} and {tuple(test_x.shape[1:])}")
    return finish("fashion-mnist", train=uint8_to_float(train_x), train_labels=train_y,
                  test=uint8_to_float(test_x), test_labels=test_y, class_names=CLASS_NAMES,
                  source=str(folder), image_size=image_size, in_channels=in_channels,
                  mean=MEAN, std=STD, norm_mean=mean, norm_std=std)
