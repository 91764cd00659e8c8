"""``fashion-mnist``: the four original IDX ``.gz`` files, parsed with numpy only.

Looked for in the folder the user gives (or its ``fashion-mnist/`` sub-folder), then where
Debian's ``dataset-fashion-mnist`` package installs them. Every header field is checked, so a
wrong or damaged file is an InputError naming it rather than a reshape error deep inside numpy.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..common.errors import InputError
from .common import DATASETS, finish
from .transforms import uint8_to_float
from .types import LabeledDataset

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
            return d
        state = "does not exist" if not d.is_dir() else f"missing {', '.join(missing)}"
        looked.append(f"  {d} ({state})")
    raise InputError(
        "fashion-mnist: the IDX files were not found. Expected the four files "
        f"{', '.join(FILES.values())} in one folder. Looked in:\n" + "\n".join(looked) +
        "\nPass that folder (or its parent holding fashion-mnist/) as the data root, or on "
        "Debian/Ubuntu run: apt-get install dataset-fashion-mnist")


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Decompress and parse one IDX file of unsigned bytes with ``ndim`` dimensions."""
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: expected a complete gzip-compressed IDX file, found a "
                         f"truncated or corrupt one ({exc})") from None
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InputError(f"{path}: expected an IDX header of {header} bytes, "
                         f"found {len(raw)} bytes")
    zero, code, dims_found = raw[0:2], raw[2], raw[3]
    if zero != b"\x00\x00" or code != _UBYTE or dims_found != ndim:
        magic = int.from_bytes(raw[:4], "big")
        raise InputError(f"{path}: expected IDX magic number {(_UBYTE << 8) | ndim:#010x} "
                         f"(unsigned bytes, {ndim} dimensions), found {magic:#010x}")
    dims = [int(v) for v in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)]
    expected = int(np.prod(dims, dtype=np.int64))
    if min(dims) < 0 or len(raw) - header != expected:
        raise InputError(f"{path}: header says dimensions {dims} ({expected} data bytes), "
                         f"found {len(raw) - header} data bytes (truncated or corrupt)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


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
def load(root=None, *, image_size=None, in_channels=None) -> LabeledDataset:
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
                  mean=MEAN, std=STD)
