"""Unlabeled "wild" image pools for the sampling-based methods (DFND, MosaicKD).

Those methods never see the teacher's training data: they pick from unlabeled images of another
distribution. Three sources, all returned in the teacher's input space (its channels, size and
normalisation): random crops of scikit-learn's two sample photographs (always available, no
download), any folder of images, or another dataset's train images without their labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..common.allowed_paths import check_allowed
from ..common.errors import InputError, check_range
from .common import DATASETS, normalize_
from .images import EXTENSIONS, decode_many, list_images, warn_skipped
from .transforms import convert, to_channels, uint8_to_float
from .types import DatasetInfo

MAX_POOL = 1_000_000  # beyond this a pool no longer fits in memory at any useful size
CROP_FRACTION = (0.1, 0.6)  # crop side, as a fraction of the photograph's shorter side
DATASET_PREFIX = "dataset:"


def load_wild_pool(source, info: DatasetInfo, *, n: int, seed: int, root=None) -> Tensor:
    """``n`` unlabeled images (fewer if a folder/dataset has fewer), normalised with ``info``.

    ``source``: None or "default" (crops of the sample photographs), "dataset:NAME" (that
    dataset's train images; ``root`` goes to its loader), or a path to a folder of images.
    """
    if not isinstance(info, DatasetInfo):
        raise InputError(f"wild pool: expected a DatasetInfo, found {type(info).__name__}")
    n = check_range("wild pool n", n, low=1, high=MAX_POOL, integer=True)
    seed = check_range("wild pool seed", seed, low=0, high=2**32 - 1, integer=True)
    text = "" if source is None else str(source).strip()
    if text.lower() in ("", "default"):
        x01 = sample_photo_crops(n, seed, size=info.image_size, channels=info.in_channels)
    elif text.lower().startswith(DATASET_PREFIX):
        x01 = _from_dataset(text[len(DATASET_PREFIX):].strip(), info, n, seed, root)
    else:
        x01 = _from_folder(Path(text).expanduser(), info, n, seed)
    return normalize_(x01.contiguous(), info)


def check_wild_source(source, field: str = "--wild-data") -> str | None:
    """A dashboard's wild-data value with its folder, if it names one, checked against the allowed
    folders (and resolved); the default photos and ``dataset:NAME`` are not paths and pass as
    they are. The command line does not call this: it is the operator's own shell."""
    text = "" if source is None else str(source).strip()
    if text.lower() in ("", "default") or text.lower().startswith(DATASET_PREFIX):
        return text or None
    return str(check_allowed(text, field))


def sample_photo_crops(n: int, seed: int, *, size: int, channels: int) -> Tensor:
    """[0, 1] crops of random size/position, randomly flipped, of sklearn's china/flower photos.

    Each crop is read from the level of a 2x image pyramid where it spans size..2*size pixels,
    and ``roi_align`` averages up to 2x2 bilinear samples per output pixel there: antialiased
    like a proper resize, yet all crops are done in a few batched calls (thousands per second).
    """
    from sklearn.datasets import load_sample_images  # lazy: only this source needs them
    from torchvision.ops import roi_align

    photos = [uint8_to_float(img[None]) for img in load_sample_images().images]
    photos = [to_channels(p, channels) if channels == 1 else p for p in photos]
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(photos), size=n)
    frac = rng.uniform(*CROP_FRACTION, size=n)
    pos = rng.random(size=(n, 2))
    flip = rng.random(size=n) < 0.5
    out = torch.empty((n, photos[0].shape[1], size, size), dtype=torch.float32)
    for i, photo in enumerate(photos):
        h, w = photo.shape[-2:]
        side = frac * min(h, w)
        x0, y0 = pos[:, 0] * (w - side), pos[:, 1] * (h - side)
        level = np.floor(np.log2(np.maximum(side / size, 1.0))).astype(int)
        image = photo
        for lv in range(int(level[which == i].max(initial=0)) + 1):
            sel = np.flatnonzero((which == i) & (level == lv))
            if len(sel):
                boxes = np.stack([x0[sel], y0[sel], x0[sel] + side[sel], y0[sel] + side[sel]], 1)
                out[torch.from_numpy(sel)] = roi_align(
                    image, [torch.from_numpy(boxes).float()], output_size=(size, size),
                    spatial_scale=0.5 ** lv, sampling_ratio=-1, aligned=True)
            image = F.avg_pool2d(image, 2, ceil_mode=True)  # next pyramid level
    flip_idx = torch.from_numpy(np.flatnonzero(flip))
    out[flip_idx] = out[flip_idx].flip(-1)
    out = photometric_jitter(out.clamp_(0.0, 1.0), rng)
    return to_channels(out, channels)


def photometric_jitter(x01: Tensor, rng: np.random.Generator) -> Tensor:
    """Per-crop autocontrast, gamma in [1/3, 3] and inversion (each with probability 1/2).

    Two photographs give mid-grey, low-contrast textures; a teacher of dark-background data
    (digits, Fashion-MNIST) then calls almost all of them one class (measured: 100% "Bag" among
    the 2,000 most confident crops without this, benchmarks/RESULTS.md). These label-free
    transforms widen the pool's appearance without looking at any target data.
    """
    n = len(x01)
    lo = x01.amin(dim=(1, 2, 3), keepdim=True)
    hi = x01.amax(dim=(1, 2, 3), keepdim=True)
    stretch = torch.from_numpy(rng.random(n) < 0.5).view(-1, 1, 1, 1)
    x01 = torch.where(stretch, (x01 - lo) / (hi - lo).clamp_min(1e-3), x01)
    gamma = torch.from_numpy(np.exp(rng.uniform(np.log(1 / 3), np.log(3), n))).float().view(-1, 1, 1, 1)
    x01 = x01.clamp(0.0, 1.0).pow(gamma)
    invert = torch.from_numpy(rng.random(n) < 0.5).view(-1, 1, 1, 1)
    return torch.where(invert, 1.0 - x01, x01)


def _from_folder(folder: Path, info: DatasetInfo, n: int, seed: int) -> Tensor:
    """Every image under ``folder`` (recursive), or a seeded subset of ``n``; corrupt skipped."""
    if not folder.is_dir():
        raise InputError(
            f"wild pool source {str(folder)!r}: expected 'default', '{DATASET_PREFIX}NAME' or "
            f"an existing folder of images, "
            f"found {'a file' if folder.exists() else 'no such folder'}")
    files = list_images(folder, "wild pool folder")  # links: never out of it or the allowed folders
    if not files:
        raise InputError(f"wild pool folder {folder}: expected image files "
                         f"({', '.join(EXTENSIONS)}) anywhere under it, found none")
    order = [files[i] for i in np.random.default_rng(seed).permutation(len(files))]
    good, bad, start = [], [], 0
    while len(good) < n and start < len(order):  # decode only what is needed, refill for bad ones
        batch = order[start:start + (n - len(good))]
        start += len(batch)
        for path, result in zip(batch, decode_many(batch, info.image_size)):
            if result is None:
                bad.append(path)
            else:
                good.append(result[0])
    warn_skipped(f"wild pool folder {folder}", bad)
    if not good:
        raise InputError(f"wild pool folder {folder}: every image is corrupt or unreadable "
                         f"({len(bad)} file(s))")
    return to_channels(uint8_to_float(np.stack(good)), info.in_channels)


def _from_dataset(name: str, info: DatasetInfo, n: int, seed: int, root) -> Tensor:
    """A seeded subset of another dataset's train images, moved into ``info``'s input space."""
    if not name:
        raise InputError(f"wild pool source: expected '{DATASET_PREFIX}NAME' with NAME one of "
                         f"{', '.join(DATASETS.names())}, found no name")
    loader = DATASETS.get(name)
    # Native resolution, then resize only the n kept images; a folder is decoded at the target
    # size directly (it has no native size, and resizing twice would blur it).
    ds = loader(root, image_size=info.image_size if name == "folder" else None, in_channels=None)
    images = ds.train.images
    idx = torch.from_numpy(np.random.default_rng(seed).permutation(len(images))[:n])
    x01 = ds.info.denormalize(images[idx])
    return convert(x01, size=info.image_size, channels=info.in_channels)
