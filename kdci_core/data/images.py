"""Decoding image files (PIL) for the folder dataset and folder wild pools.

User folders hold anything: a file that PIL cannot decode, or whose header declares more pixels
than :func:`pixel_limit` (a decompression bomb), is reported as ``None`` so that the caller can
skip and count it instead of failing the whole load on one bad file.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..common.limits import max_inflated_bytes
from .walk import walk_files

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff")
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


def is_image_file(path) -> bool:
    """True for a known image extension, in any case (``.JPG`` counts)."""
    return str(path).lower().endswith(EXTENSIONS)


def list_images(folder: Path, what: str = "image folder") -> list[Path]:
    """Every image file under ``folder``, recursively, hidden entries excluded, in sorted order,
    each once, resolved; symlinks never lead out of it or the allowed folders, nor in a loop
    (:mod:`.walk`; what was skipped is one warning naming ``what`` and the folder)."""
    return walk_files(folder, is_image_file, f"{what} {folder}")


def _square(img: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` then centre-crop: keeps the aspect ratio."""
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((nw, nh), Image.BILINEAR, reducing_gap=None)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def _to_8bit(arr: np.ndarray, mode: str) -> np.ndarray:
    """16-bit, 32-bit and float grey images scaled to 0..255 by their nominal range."""
    if mode == "F" and arr.size and arr.max() <= 1.0:
        top = 1.0
    elif mode.startswith("I;16") or (arr.size and arr.max() > 255):
        top = 65535.0
    else:
        top = 255.0
    return (arr.clip(0, top) * (255.0 / top)).round().astype(np.uint8)


#: the most pixels one image may have (8192 x 8192; PIL's own default warns only above 89 M and
#: refuses above 179 M), and never more than the memory budget at BYTES_PER_PIXEL: the decode
#: holds a float64 grey copy, the RGB image and its resize at once
MAX_PIXELS = 8192 * 8192
BYTES_PER_PIXEL = 16


def pixel_limit() -> int:
    """Pixels one image may declare before it is decoded (a decompression bomb is a small file
    whose header declares a huge image)."""
    return min(MAX_PIXELS, max_inflated_bytes() // BYTES_PER_PIXEL)


def decode(path, size: int, max_pixels: int | None = None) -> tuple[np.ndarray, bool] | None:
    """(uint8 size x size x 3 RGB, was_grey) for one file, or None if PIL cannot decode it or its
    header declares more than ``max_pixels`` (default :func:`pixel_limit`), checked before the
    pixels are decoded.

    Grey images are replicated to 3 channels here; ``to_channels`` turns them back losslessly
    because the luma weights sum to 1.
    """
    max_pixels = pixel_limit() if max_pixels is None else max_pixels
    try:
        with Image.open(path) as img:
            if img.size[0] * img.size[1] > max_pixels:
                return None
            img.load()
            grey = img.mode in _GREY_MODES
            if img.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
                img = Image.fromarray(_to_8bit(np.asarray(img, dtype=np.float64), img.mode))
            out = np.asarray(_square(img.convert("RGB"), size), dtype=np.uint8)
        # An RGB file whose three channels are identical is grey too (common for scans).
        grey = grey or bool((out[..., 0] == out[..., 1]).all()
                            and (out[..., 1] == out[..., 2]).all())
        return out, grey
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, MemoryError):
        return None


def decode_many(paths: Sequence[Path], size: int) -> list[tuple[np.ndarray, bool] | None]:
    """``decode`` over many files with a few threads (PIL releases the GIL while decoding)."""
    workers, limit = max(1, min(8, os.cpu_count() or 1)), pixel_limit()
    if len(paths) < 16 or workers == 1:
        return [decode(p, size, limit) for p in paths]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda p: decode(p, size, limit), paths, chunksize=32))


def warn_skipped(what: str, bad: Sequence[Path]) -> None:
    """One warning per load naming (some of) the skipped files."""
    if bad:
        names = ", ".join(str(p) for p in bad[:5]) + (" ..." if len(bad) > 5 else "")
        warnings.warn(f"{what}: skipped {len(bad)} corrupt, unreadable or too large image(s): {names}",
                      stacklevel=3)
