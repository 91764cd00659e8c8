"""Data files cannot ask for memory they do not hold (issue 19): a gzip IDX file is inflated only
as far as its header declares and the budget allows, a CIFAR pickle's opcodes are checked before
it is unpickled, an image's size before it is decoded."""

from __future__ import annotations

import json
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from kdci_core.data import load_dataset
from kdci_core.data import idx as idx_module
from kdci_core.data.images import decode
from kdci_core.errors import InputError
from kdci_core.models import build_model
from kdci_core.models.weights import save_checkpoint
from tests.crafted import MIB, child, cli_peak, gzip_zeros_after

IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def idx_header(*dims: int) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)


def fashion_folder(folder: Path, train_images: Path | None = None) -> Path:
    """Four tiny valid IDX files (the train images replaced by ``train_images`` when given)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        images = rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)
        labels = np.arange(10, dtype=np.uint8)
        for name, arr in ((f"{prefix}-images-idx3-ubyte.gz", images), (f"{prefix}-labels-idx1-ubyte.gz", labels)):
            gzip_zeros_after(folder / name, idx_header(*arr.shape) + arr.tobytes(), 0)
    if train_images is not None:
        train_images.replace(folder / IDX_FILES[0])
    return folder


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory) -> Path:
    return save_checkpoint(build_model("lenet5", num_classes=10, in_channels=1),
                           tmp_path_factory.mktemp("t") / "ok.safetensors")


@pytest.fixture(scope="module")
def baseline(teacher_file):
    got = cli_peak(["teacher", "inspect", str(teacher_file), "--arch", "lenet5", "--num-classes", "10"])
    assert got["result"] == 0, got
    return got["peak"]


@pytest.mark.parametrize("dims, refusal", [
    ((60000, 28, 28), "trailing data"),           # Fashion-MNIST's header, 2 GiB of zeros after it
    ((2048, 1024, 1024), "KDCI_MAX_INFLATED_MB"),  # a header declaring 2 GiB
])
def test_gzip_idx_bomb_refused_within_memory(tmp_path, teacher_file, baseline, dims, refusal):
    bomb = gzip_zeros_after(tmp_path / "bomb.gz", idx_header(*dims), 2048)
    assert bomb.stat().st_size < 2_200_000  # ~2 MB on disk, 2 GiB inflated
    folder = fashion_folder(tmp_path / "fashion-mnist", bomb)
    got = cli_peak(["teacher", "inspect", str(teacher_file), "--arch", "lenet5", "--num-classes", "10",
                    "--dataset", "fashion-mnist", "--data-root", str(folder)])
    print(f"IDX bomb {dims}: peak {got['peak']} bytes, baseline {baseline}")
    assert got["result"] == 2 and refusal in got["stderr"] and IDX_FILES[0] in got["stderr"], got
    assert got["peak"] < 1_000_000_000 and got["peak"] < baseline + 150 * MIB


@pytest.mark.parametrize("dims, message", [
    ((0xFFFFFFFF, 28, 28), "expected non-negative dimensions"),
    ((1 << 21, 1 << 21, 1 << 22), "would take"),  # 2**64 bytes: wraps to 0 in int64
])
def test_idx_header_dimensions_never_a_traceback(tmp_path, monkeypatch, dims, message):
    monkeypatch.setattr(idx_module, "SYSTEM_DIRS", [])
    folder = fashion_folder(tmp_path / "fm", gzip_zeros_after(tmp_path / "h.gz", idx_header(*dims), 0))
    with pytest.raises(InputError, match=message):
        load_dataset("fashion-mnist", folder)
    assert load_dataset("fashion-mnist", fashion_folder(tmp_path / "good")).train.images.shape[0] == 10


#: a pickle op announcing 4 GiB of bytes; a memo slot 2**31 (CPython grows its memo list to twice
#: the slot: 32 GiB written); numpy's _reconstruct asked for an empty 4 GiB array
CIFAR_BOMBS = {
    "bytes8": (b"\x80\x04\x8e" + (4 << 30).to_bytes(8, "little") + b"abc.", "bytes8", 12 << 30),
    "memo": (b"\x80\x02}r\xff\xff\xff\x7f.", "memo slot 2,147,483,647", 6 << 30),
    "reconstruct": (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n\x8a\x05"
                    + (4 << 30).to_bytes(5, "little") + b"\x85C\x01b\x87R.", "KDCI_MAX_INFLATED_MB",
                    12 << 30),
}


@pytest.mark.parametrize("case", sorted(CIFAR_BOMBS))
def test_cifar_pickle_cannot_allocate_what_it_declares(tmp_path, case):
    """Run in a child capped in address space; the reservation it makes (VmPeak) must not grow by
    what the pickle declares."""
    blob, message, cap = CIFAR_BOMBS[case]
    path = tmp_path / "data_batch_1"
    path.write_bytes(blob)
    code = (f"from pathlib import Path\nfrom kdci_core.data.cifar import read_pickle\n"
            f"from kdci_core.errors import InputError\nbefore = status('VmPeak')\n"
            f"try:\n    read_pickle(Path({json.dumps(str(path))}))\n    result = 'loaded'\n"
            f"except InputError as exc:\n    result = str(exc)\ngrew = status('VmPeak') - before\n")
    got = child(code, limit_bytes=cap)
    assert got["result"] and message in got["result"] and str(path) in got["result"], got
    assert got["grew"] < 256 * MIB, got


def test_cifar_files_checked_against_the_budget(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in [(f"data_batch_{i}", 4) for i in range(1, 5)] + [("data_batch_5", 700), ("test_batch", 4)]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": [0] * n}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"c"] * 10}, protocol=2))
    assert len(load_dataset("cifar10", tmp_path).train) == 716
    monkeypatch.setenv("KDCI_MAX_INFLATED_MB", "1")
    with pytest.raises(InputError, match=r"data_batch_5: refused: the file would take \d MiB .*"
                                         r"KDCI_MAX_INFLATED_MB"):
        load_dataset("cifar10", tmp_path)


def _png(path: Path, width: int, height: int) -> Path:
    """A grey PNG of zeros, compressed row by row (a 9000 x 9000 one is ~80 KB on disk)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    c, row = zlib.compressobj(9), bytes(width + 1)
    idat = b"".join(c.compress(row) for _ in range(height)) + c.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_image_size_checked_before_decoding(tmp_path, monkeypatch):
    """81 M pixels (under PIL's own warning level of 89 M): skipped as unreadable, not decoded."""
    assert decode(_png(tmp_path / "huge.png", 9000, 9000), 32) is None
    assert decode(_png(tmp_path / "small.png", 300, 300), 32)[0].shape == (32, 32, 3)
    monkeypatch.setenv("KDCI_MAX_INFLATED_MB", "1")  # 65,536 pixels at 16 bytes each
    assert decode(tmp_path / "small.png", 32) is None
    assert decode(_png(tmp_path / "tiny.png", 200, 200), 32) is not None
