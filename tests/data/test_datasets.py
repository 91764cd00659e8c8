"""Tests of kdci_core.data: every reader on tiny files written here, the real Fashion-MNIST
when ../shared is present, the restricted unpickler against a malicious pickle, wild pools."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kdci_core.data import (DATASETS, DatasetInfo, ImageSet, LabeledDataset, dataset_names,
                            load_dataset, load_wild_pool)
from kdci_core.data import idx as idx_module
from kdci_core.data.cifar import RestrictedUnpickler
from kdci_core.errors import InputError
from tests.helpers import FASHION

FMNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


# ----------------------------------------------------------------------------- helpers
def write_idx(path: Path, arr: np.ndarray) -> None:
    """An IDX file of unsigned bytes, gzip-compressed, exactly like the originals."""
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    path.write_bytes(gzip.compress(header + arr.astype(np.uint8).tobytes()))


def make_fmnist(folder: Path, n_train=30, n_test=10, size=28) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, size, size), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 10)
    return folder


def cifar_batch(n: int, num_classes: int, label_key: bytes, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"tiny", b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            label_key: [int(v) for v in np.arange(n) % num_classes],
            b"filenames": [f"img{i}.png".encode() for i in range(n)]}


def dump(obj, path: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # protocol 2: what the Python 2 originals used


def make_cifar10(parent: Path) -> Path:
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        dump(cifar_batch(4, 10, b"labels", i), folder / f"data_batch_{i}")
    dump(cifar_batch(6, 10, b"labels", 9), folder / "test_batch")
    dump({b"label_names": [f"class{i}".encode() for i in range(10)], b"num_vis": 3072},
         folder / "batches.meta")
    return folder


def make_cifar100(parent: Path) -> Path:
    folder = parent / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n, seed in (("train", 200, 1), ("test", 100, 2)):
        batch = cifar_batch(n, 100, b"fine_labels", seed)
        batch[b"coarse_labels"] = [v % 20 for v in batch[b"fine_labels"]]
        dump(batch, folder / name)
    dump({b"fine_label_names": [f"f{i}".encode() for i in range(100)],
          b"coarse_label_names": [f"c{i}".encode() for i in range(20)]}, folder / "meta")
    return folder


def save_image(path: Path, value: int, mode="RGB", size=(12, 10), ext_format=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    color = value if mode == "L" else (value, 255 - value, value // 2)
    Image.new(mode, size, color).save(path, format=ext_format)


def make_tree(root: Path, classes=("cat", "dog"), n=3, mode="RGB") -> Path:
    for ci, c in enumerate(classes):
        for i in range(n):
            save_image(root / c / f"{i}.png", 40 * ci + 10 * i, mode)
    return root


class Evil:
    """Unpickling this runs a shell command: the restricted unpickler must never call it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


# ----------------------------------------------------------------------------- digits
def test_digits_shapes_split_normalisation():
    ds = load_dataset("digits")  # the first call also imports scikit-learn
    start = time.perf_counter()
    load_dataset("digits")
    assert time.perf_counter() - start < 1.0
    assert isinstance(ds, LabeledDataset) and isinstance(ds.train, ImageSet)
    assert ds.train.images.shape == (1437, 1, 8, 8) and ds.test.images.shape == (360, 1, 8, 8)
    assert len(ds.train) == 1437 and len(ds.test) == 360
    assert ds.train.images.dtype == torch.float32 and ds.train.labels.dtype == torch.int64
    info = ds.info
    assert (info.name, info.num_classes, info.in_channels, info.image_size) == ("digits", 10, 1, 8)
    assert info.class_names == tuple(str(i) for i in range(10))
    assert abs(ds.train.images.mean().item()) < 1e-2
    assert abs(ds.train.images.std().item() - 1) < 1e-2
    counts = torch.bincount(ds.test.labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: ~36 per class
    x01 = info.denormalize(ds.train.images)
    assert x01.min() >= 0 and x01.max() <= 1
    assert torch.allclose(info.normalize(x01), ds.train.images, atol=1e-5)
    assert ds.skipped == 0 and "load_digits" in ds.source


def test_digits_deterministic_and_overrides():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    c = load_dataset("digits", image_size=16, in_channels=3)
    assert c.train.images.shape == (1437, 3, 16, 16) and c.info.in_channels == 3
    assert len(c.info.mean) == 3 and c.info.image_size == 16
    assert torch.equal(c.train.labels, a.train.labels)


def test_registry_and_bad_overrides():
    assert dataset_names() == ["cifar10", "cifar100", "digits", "fashion-mnist", "folder"]
    assert "digits" in DATASETS
    with pytest.raises(InputError, match="unknown dataset 'mnist'.*digits"):
        load_dataset("mnist")
    with pytest.raises(InputError, match="in_channels"):
        load_dataset("digits", in_channels=2)
    with pytest.raises(InputError, match="image_size"):
        load_dataset("digits", image_size=4)


# ----------------------------------------------------------------------------- IDX
def test_idx_reads_standard_layout(tmp_path, monkeypatch):
    monkeypatch.setattr(idx_module, "SYSTEM_DIRS", [tmp_path / "nowhere"])
    folder = make_fmnist(tmp_path / "fashion-mnist")
    for root in (folder, tmp_path):  # the folder itself, or its parent
        ds = load_dataset("fashion-mnist", root)
        assert ds.train.images.shape == (30, 1, 28, 28) and ds.test.images.shape == (10, 1, 28, 28)
        assert ds.info.mean == (0.2860,) and ds.info.std == (0.3530,)
        assert ds.info.class_names[0] == "T-shirt/top" and ds.info.class_names[9] == "Ankle boot"
        assert ds.source == str(folder)
    raw = np.frombuffer(gzip.decompress((folder / FMNIST_FILES[0]).read_bytes())[16:], np.uint8)
    first = ds.info.denormalize(ds.train.images[:1]).flatten()
    assert torch.allclose(first, torch.from_numpy(raw[:784] / 255.0).float(), atol=1e-5)
    assert ds.train.labels.tolist() == [i % 10 for i in range(30)]
    rgb = load_dataset("fashion-mnist", folder, image_size=32, in_channels=3)
    assert rgb.train.images.shape == (30, 3, 32, 32) and rgb.info.mean == (0.2860,) * 3


def test_idx_missing_lists_every_path(tmp_path, monkeypatch):
    system = tmp_path / "system" / "fashion-mnist"
    monkeypatch.setattr(idx_module, "SYSTEM_DIRS", [system])
    root = tmp_path / "mine"
    root.mkdir()
    (root / FMNIST_FILES[0]).write_bytes(b"")
    with pytest.raises(InputError) as err:
        load_dataset("fashion-mnist", root)
    msg = str(err.value)
    for path in (root, root / "fashion-mnist", system):
        assert str(path) in msg
    for name in FMNIST_FILES:
        assert name in msg
    assert "apt-get install dataset-fashion-mnist" in msg


def test_idx_truncated_and_inconsistent(tmp_path, monkeypatch):
    monkeypatch.setattr(idx_module, "SYSTEM_DIRS", [])
    folder = make_fmnist(tmp_path / "fm")
    path = folder / FMNIST_FILES[0]
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(InputError, match="train-images-idx3-ubyte.gz.*truncated or corrupt"):
        load_dataset("fashion-mnist", folder)
    raw = gzip.decompress(good)  # a complete gzip whose data is shorter than the header says
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(InputError, match="train-images-idx3-ubyte.gz.*data bytes"):
        load_dataset("fashion-mnist", folder)
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + raw[4:]))  # wrong number of dims
    with pytest.raises(InputError, match="magic number"):
        load_dataset("fashion-mnist", folder)
    path.write_bytes(good)
    write_idx(folder / FMNIST_FILES[1], np.zeros(29, np.uint8))
    with pytest.raises(InputError, match="expected 30 labels"):
        load_dataset("fashion-mnist", folder)


def test_real_fashion_mnist():
    folder = FASHION
    if not all((folder / f).is_file() for f in FMNIST_FILES):
        pytest.skip(f"real Fashion-MNIST not available at {folder} (../shared is absent in a "
                    f"user's clone)")
    ds = load_dataset("fashion-mnist", folder)
    assert len(ds.train) == 60000 and len(ds.test) == 10000
    assert ds.train.images.shape[1:] == (1, 28, 28) and ds.info.num_classes == 10
    assert torch.bincount(ds.train.labels).tolist() == [6000] * 10
    assert abs(ds.train.images.mean().item()) < 0.01
    assert abs(ds.train.images.std().item() - 1) < 0.01


# ----------------------------------------------------------------------------- CIFAR
def test_cifar10_and_cifar100_tiny(tmp_path):
    folder = make_cifar10(tmp_path)
    for root in (folder, tmp_path):
        ds = load_dataset("cifar10", root)
        assert ds.train.images.shape == (20, 3, 32, 32) and ds.test.images.shape == (6, 3, 32, 32)
        assert ds.info.class_names == tuple(f"class{i}" for i in range(10))
        assert ds.info.mean == (0.4914, 0.4822, 0.4465) and ds.source == str(folder)
    with open(folder / "data_batch_1", "rb") as f:
        first = RestrictedUnpickler(f).load()[b"data"][0]
    expected = torch.from_numpy(first.reshape(3, 32, 32) / 255.0).float()
    assert torch.allclose(ds.info.denormalize(ds.train.images[:1])[0], expected, atol=1e-5)
    grey = load_dataset("cifar10", tmp_path, in_channels=1, image_size=16)
    assert grey.train.images.shape == (20, 1, 16, 16) and len(grey.info.mean) == 1

    c100 = make_cifar100(tmp_path / "c100")
    ds = load_dataset("cifar100", c100.parent)
    assert ds.info.num_classes == 100 and ds.info.class_names[5] == "f5"
    assert ds.train.images.shape == (200, 3, 32, 32) and len(ds.test) == 100
    assert ds.train.labels.max().item() == 99


def test_cifar_accepts_str_keys_and_rejects_bad_layouts(tmp_path):
    folder = make_cifar10(tmp_path)
    batch = cifar_batch(4, 10, b"labels", 1)
    dump({k.decode(): v for k, v in batch.items()}, folder / "data_batch_1")
    assert len(load_dataset("cifar10", folder).train) == 20
    (folder / "test_batch").unlink()
    with pytest.raises(InputError, match="test_batch") as err:
        load_dataset("cifar10", folder)
    assert str(folder / "cifar-10-batches-py") in str(err.value)
    dump(cifar_batch(6, 10, b"labels", 9), folder / "test_batch")
    dump({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}, folder / "data_batch_2")
    with pytest.raises(InputError, match="data_batch_2.*N x 3072"):
        load_dataset("cifar10", folder)
    (folder / "data_batch_2").write_bytes(b"\x80\x02garbage")
    with pytest.raises(InputError, match="data_batch_2"):
        load_dataset("cifar10", folder)
    with pytest.raises(InputError, match="data root"):
        load_dataset("cifar100")


def test_restricted_unpickler_refuses_code(tmp_path):
    folder = make_cifar10(tmp_path)
    marker = tmp_path / "pwned.txt"
    dump({b"data": Evil(marker), b"labels": [0]}, folder / "data_batch_3")
    with pytest.raises(InputError, match=r"data_batch_3.*refused.*system"):
        load_dataset("cifar10", folder)
    assert not marker.exists()
    evil_eval = pickle.dumps({b"x": _EvalReduce()}, protocol=4)
    with pytest.raises(InputError, match="builtins.eval"):
        RestrictedUnpickler(io.BytesIO(evil_eval)).load()


def test_restricted_unpickler_reads_python2_pickle():
    """The original CIFAR files are Python 2 pickles: py2 str opcodes, numpy.core globals."""
    def s(b: bytes) -> bytes:  # SHORT_BINSTRING, Python 2's str
        return b"U" + bytes([len(b)]) + b
    raw = (b"\x80\x02}(" + s(b"data") +
           b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + s(b"b") +
           b"\x87R(K\x01K\x02K\x03\x86cnumpy\ndtype\n" + s(b"u1") + b"K\x00K\x01\x87R(K\x03" +
           s(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89" + s(bytes(range(6))) +
           b"tb" + s(b"labels") + b"](K\x01K\x02eu.")
    d = RestrictedUnpickler(io.BytesIO(raw)).load()
    assert d[b"data"].dtype == np.uint8 and d[b"data"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert d[b"labels"] == [1, 2]


class _EvalReduce:
    def __reduce__(self):
        return (eval, ("1 + 1",))


# ----------------------------------------------------------------------------- folder
def test_folder_train_test_layout(tmp_path):
    make_tree(tmp_path / "train", n=4)
    make_tree(tmp_path / "test", n=2)
    ds = load_dataset("folder", tmp_path)
    assert ds.info.class_names == ("cat", "dog") and ds.info.in_channels == 3
    assert ds.train.images.shape == (8, 3, 32, 32) and ds.test.images.shape == (4, 3, 32, 32)
    assert ds.train.labels.tolist() == [0] * 4 + [1] * 4 and ds.skipped == 0
    assert abs(ds.train.images.mean().item()) < 1e-3  # stats computed on the train split
    (tmp_path / "test").rename(tmp_path / "val")
    assert len(load_dataset("folder", tmp_path, image_size=16).test) == 4


def test_folder_single_tree_grey_and_corrupt(tmp_path):
    make_tree(tmp_path, classes=("a", "b", "c"), n=5, mode="L")
    (tmp_path / "b" / "broken.png").write_bytes(b"not a png at all")
    with pytest.warns(UserWarning, match="skipped 1 corrupt"):
        ds = load_dataset("folder", tmp_path, image_size=8)
    assert ds.skipped == 1 and ds.info.in_channels == 1
    assert ds.train.images.shape == (12, 1, 8, 8) and len(ds.test) == 3
    assert torch.bincount(ds.test.labels).tolist() == [1, 1, 1]
    with pytest.warns(UserWarning):
        again = load_dataset("folder", tmp_path, image_size=8)
    assert torch.equal(again.test.images, ds.test.images)  # deterministic split


@pytest.mark.parametrize("case, match", [
    ("missing", "does not exist"),
    ("empty", "empty folder"),
    ("flat", "no sub-folders"),
    ("empty_class", "none in: dog"),
    ("one_class", "at least 2 class folders"),
    ("all_corrupt", "every image is corrupt"),
    ("no_test", "neither test/ nor val/"),
])
@pytest.mark.filterwarnings("ignore:.*skipped")
def test_folder_rejects_bad_layouts(tmp_path, case, match):
    root = tmp_path / "data"
    if case != "missing":
        root.mkdir()
    if case == "flat":
        save_image(root / "x.png", 10)
    elif case == "empty_class":
        make_tree(root, classes=("cat",))
        (root / "dog").mkdir()
        (root / "dog" / "notes.txt").write_text("no images")
    elif case == "one_class":
        make_tree(root, classes=("cat",))
    elif case == "all_corrupt":
        for c in ("a", "b"):
            (root / c).mkdir()
            (root / c / "x.jpg").write_bytes(b"\xff\xd8 broken")
    elif case == "no_test":
        make_tree(root / "train")
    with pytest.raises(InputError, match=match) as err:
        load_dataset("folder", root)
    assert "expected layout" in str(err.value)


# ----------------------------------------------------------------------------- wild pools
def _info(channels: int, size: int) -> DatasetInfo:
    return DatasetInfo("t", 10, channels, size, (0.5,) * channels, (0.25,) * channels,
                       tuple(str(i) for i in range(10)))


@pytest.mark.parametrize("channels, size", [(1, 8), (3, 32), (1, 32), (3, 8)])
def test_wild_default_crops(channels, size):
    info = _info(channels, size)
    pool = load_wild_pool(None, info, n=20, seed=3)
    assert pool.shape == (20, channels, size, size) and pool.dtype == torch.float32
    x01 = pool * 0.25 + 0.5
    assert x01.min() >= -1e-5 and x01.max() <= 1 + 1e-5 and x01.std() > 0.05
    assert torch.equal(pool, load_wild_pool("default", info, n=20, seed=3))
    assert not torch.equal(pool, load_wild_pool("default", info, n=20, seed=4))


def test_wild_folder(tmp_path):
    for i in range(6):
        save_image(tmp_path / "a" / f"{i}.PNG", 30 * i, ext_format="PNG")
    save_image(tmp_path / "b" / "deep" / "x.jpg", 77)
    (tmp_path / "b" / "bad.png").write_bytes(b"garbage")
    (tmp_path / "readme.txt").write_text("ignored")
    info = _info(1, 16)
    sub = load_wild_pool(str(tmp_path), info, n=3, seed=0)
    assert sub.shape == (3, 1, 16, 16)
    assert torch.equal(sub, load_wild_pool(tmp_path, info, n=3, seed=0))
    with pytest.warns(UserWarning, match="skipped 1"):
        every = load_wild_pool(tmp_path, info, n=100, seed=0)
    assert every.shape == (7, 1, 16, 16)  # all 7 readable images, nothing invented
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="found none"):
        load_wild_pool(empty, info, n=3, seed=0)
    with pytest.raises(InputError, match="no such folder"):
        load_wild_pool(tmp_path / "nope", info, n=3, seed=0)
    with pytest.raises(InputError, match="n"):
        load_wild_pool(None, info, n=0, seed=0)


def test_wild_from_dataset(tmp_path, monkeypatch):
    monkeypatch.setattr(idx_module, "SYSTEM_DIRS", [])
    make_fmnist(tmp_path / "fashion-mnist")
    info = _info(3, 32)
    pool = load_wild_pool("dataset:fashion-mnist", info, n=12, seed=0, root=tmp_path)
    assert pool.shape == (12, 3, 32, 32)
    assert torch.equal(pool[:, 0], pool[:, 2])  # grey converted to RGB
    every = load_wild_pool("dataset:fashion-mnist", info, n=100, seed=0, root=tmp_path)
    assert every.shape[0] == 30  # fewer than n: all of them, nothing invented
    digits = load_wild_pool("dataset:digits", _info(1, 8), n=50, seed=1)
    assert digits.shape == (50, 1, 8, 8)
    with pytest.raises(InputError, match="unknown dataset 'nope'"):
        load_wild_pool("dataset:nope", info, n=5, seed=0)
