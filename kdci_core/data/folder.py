"""``folder``: a user's ImageFolder tree of labelled images (Tiny-ImageNet, ImageNet subsets...).

Users' folders are messy, so the layout is checked up front and every problem is an
InputError that says what is wrong and shows the layout expected; a single corrupt image is
skipped and counted instead of failing a load of thousands.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..common.errors import InputError
from .common import DATASETS, as_path, check_overrides, finish
from .images import EXTENSIONS, decode_many, is_image_file, warn_skipped
from .transforms import stratified_split, uint8_to_float
from .types import LabeledDataset
from .walk import Walker

DEFAULT_SIZE = 32
LAYOUT = ("expected layout: ROOT/train/<class>/<image> and ROOT/test/<class>/<image> "
          "(or val/ instead of test/), or one tree ROOT/<class>/<image> that is split 80/20; "
          f"images: {', '.join(EXTENSIONS)}")


def _fail(message: str):
    raise InputError(f"{message}\n{LAYOUT}")


def _classes(folder: Path, walker: Walker) -> list[str]:
    """Class names = the non-hidden sub-folders, sorted (ImageFolder's own order); a symlinked
    one that leads out of the dataset and the allowed folders is no class (:mod:`.walk`)."""
    names = walker.subfolders(folder)
    if not names:
        files = [p for p in folder.iterdir() if not p.name.startswith(".")]
        _fail(f"{folder}: expected one sub-folder per class, found no sub-folders "
              f"({len(files)} file(s) directly in it)")
    return names


def _scan(folder: Path, class_to_idx: dict[str, int], walker: Walker) -> list[tuple[str, int]]:
    """(path, label) of every image file, class by class in sorted order (torchvision's
    ``make_dataset`` order, through the walk that never loops nor leads out); a class folder
    without any image is an error."""
    samples = [(str(path), class_to_idx[c]) for c in sorted(class_to_idx) if (folder / c).is_dir()
               for path in walker.files(folder / c, is_image_file)]
    counts = np.bincount([t for _, t in samples], minlength=len(class_to_idx))
    empty = [c for c, i in class_to_idx.items() if counts[i] == 0 and (folder / c).is_dir()]
    if empty:
        _fail(f"{folder}: expected image files in every class folder, found none in: "
              f"{', '.join(empty)}")
    return samples


def _decode(samples, size: int):
    """Decode every file; returns (uint8 N x H x W x 3, labels, grey flags, skipped paths)."""
    results = decode_many([Path(p) for p, _ in samples], size)
    bad = [Path(p) for (p, _), r in zip(samples, results) if r is None]
    good = [(r, t) for (_, t), r in zip(samples, results) if r is not None]
    if not good:
        return np.zeros((0, size, size, 3), np.uint8), np.zeros(0, np.int64), [], bad
    return (np.stack([r[0] for r, _ in good]), np.array([t for _, t in good], np.int64),
            [r[1] for r, _ in good], bad)


def _check_classes(folder: Path, labels: np.ndarray, classes: list[str], n_bad: int) -> None:
    if len(labels) == 0:
        _fail(f"{folder}: every image is corrupt or unreadable ({n_bad} file(s))")
    missing = [c for i, c in enumerate(classes) if not (labels == i).any()]
    if missing:
        _fail(f"{folder}: expected at least one readable image per class, found only corrupt "
              f"images in: {', '.join(missing)}")


@DATASETS.register("folder")
def load(root=None, *, image_size=None, in_channels=None, mean=None, std=None) -> LabeledDataset:
    """Labelled images resized to ``image_size`` (default 32: shorter side, centre crop).

    Channels default to 1 when every image is grey, else 3. Mean/std come from the train split.
    """
    image_size, in_channels = check_overrides(image_size, in_channels)
    size = image_size or DEFAULT_SIZE
    base = as_path(root, "folder dataset")
    if not base.is_dir():
        _fail(f"{base}: expected a folder of labelled images, found "
              f"{'a file' if base.exists() else 'nothing (it does not exist)'}")
    if not any(p for p in base.iterdir() if not p.name.startswith(".")):
        _fail(f"{base}: expected a folder of labelled images, found an empty folder")
    walker = Walker(base)  # one walk's rule and one warning for the whole dataset
    try:
        return _load(base, size, in_channels, walker, (mean, std))
    finally:
        walker.warn(f"folder dataset {base}")


def _load(base: Path, size: int, in_channels: int | None, walker: Walker,
          norm: tuple) -> LabeledDataset:
    """:func:`load` once ``base`` is known to be a non-empty folder (``norm``: the caller's
    mean and std, or None for the train split's)."""
    split_mode = (base / "train").is_dir()
    if split_mode:
        train_dir = base / "train"
        test_dir = next((base / n for n in ("test", "val") if (base / n).is_dir()), None)
        if test_dir is None:
            _fail(f"{base}: found train/ but neither test/ nor val/ beside it")
        classes = _classes(train_dir, walker)
        extra = sorted(set(_classes(test_dir, walker)) - set(classes))
        if extra:
            _fail(f"{test_dir}: expected only classes present in {train_dir}, found extra "
                  f"class folder(s): {', '.join(extra)}")
    else:
        train_dir = test_dir = base
        classes = _classes(base, walker)
    if len(classes) < 2:
        _fail(f"{train_dir}: expected at least 2 class folders, found {len(classes)} "
              f"({', '.join(classes)})")
    class_to_idx = {c: i for i, c in enumerate(classes)}

    x, y, grey, bad = _decode(_scan(train_dir, class_to_idx, walker), size)
    if split_mode:
        x_test, y_test, grey_test, bad_test = _decode(_scan(test_dir, class_to_idx, walker), size)
        _check_classes(train_dir, y, classes, len(bad))
        if len(y_test) == 0:
            _fail(f"{test_dir}: every image is corrupt or unreadable ({len(bad_test)} file(s))")
        grey, bad = grey + grey_test, bad + bad_test
        x_train, y_train = x, y
    else:
        _check_classes(base, y, classes, len(bad))
        idx_train, idx_test = stratified_split(y, 0.2, seed=0)
        if len(idx_test) == 0:
            _fail(f"{base}: expected at least 2 readable images in some class to make the "
                  f"80/20 test split, found one per class")
        x_train, y_train, x_test, y_test = x[idx_train], y[idx_train], x[idx_test], y[idx_test]
    warn_skipped(f"folder dataset {base}", bad)

    channels = in_channels or (1 if all(grey) else 3)
    return finish("folder", train=uint8_to_float(x_train), train_labels=y_train,
                  test=uint8_to_float(x_test), test_labels=y_test, class_names=classes,
                  source=str(base), image_size=size, in_channels=channels, skipped=len(bad),
                  norm_mean=norm[0], norm_std=norm[1],
                  augment="crop-flip" if channels == 3 else "none")  # photographs, as CIFAR
