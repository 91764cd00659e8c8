"""Symlinks in users' image folders (kdci_core/data/walk.py), through the public loaders: a loop
ends, a link never leads out of the folder or the allowed folders, an image is read once, a FIFO
is never opened. On the old walk (``os.walk(followlinks=True)``, torchvision's make_dataset) the
loops and the FIFO hung (hence the timeouts) and the outward links were read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kdci_core.data import DatasetInfo, load_dataset, load_wild_pool
from kdci_core.errors import InputError
from kdci_core.data.images import list_images
from tests.data.test_datasets import save_image

pytestmark = pytest.mark.timeout(60)
INFO = DatasetInfo("t", 10, 3, 8, (0.5,) * 3, (0.25,) * 3, tuple(str(i) for i in range(10)))


@pytest.fixture(autouse=True)
def allowed(tmp_path, monkeypatch) -> Path:
    """$KDCI_HOME and ``tmp/allowed`` are the allowed folders; ``tmp/outside`` is not."""
    monkeypatch.setenv("KDCI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KDCI_ALLOWED_ROOTS", str(tmp_path / "allowed"))
    return tmp_path / "allowed"


def images(folder: Path, n: int, start: int = 0) -> Path:
    for i in range(n):
        save_image(folder / f"{start + i}.png", 20 * (start + i))
    return folder


def pool_size(folder: Path) -> int:
    return len(load_wild_pool(folder, INFO, n=1000, seed=0))


def test_a_wild_folder_with_two_links_to_itself_ends_and_reads_each_image_once(tmp_path):
    root = images(tmp_path / "wild", 3)
    (root / "loop").symlink_to(root)
    (root / "sub").mkdir()
    (root / "sub" / "up").symlink_to("..")  # relative, to an ancestor
    with pytest.warns(UserWarning, match=r"skipped 2 folder\(s\) or file\(s\) reached again"):
        assert pool_size(root) == 3


def test_a_nested_link_out_of_the_wild_folder_is_not_read(tmp_path, allowed):
    root = images(tmp_path / "wild" / "a", 1).parent
    images(tmp_path / "outside", 4, start=5)
    (root / "a" / "deep").mkdir()
    (root / "a" / "deep" / "out").symlink_to(tmp_path / "outside")
    (root / "a" / "evil.png").symlink_to(tmp_path / "outside" / "5.png")  # a file link too
    with pytest.warns(UserWarning, match=r"skipped 2 symlink\(s\) leading outside .*KDCI_ALLOWED_ROOTS"):
        assert pool_size(root) == 1
    # a link into an allowed folder is the operator's choice: followed
    images(allowed / "more", 2, start=9)
    (root / "a" / "deep" / "allowed").symlink_to(allowed / "more")
    with pytest.warns(UserWarning, match="leading outside"):
        assert pool_size(root) == 3


def test_a_link_to_elsewhere_in_the_wild_folder_is_kept_once(tmp_path):
    root = images(tmp_path / "wild" / "a", 2).parent
    (root / "b").mkdir()
    (root / "b" / "alias").symlink_to("../a")
    (root / "b" / "one.png").symlink_to(root / "a" / "0.png")
    with pytest.warns(UserWarning, match=r"skipped 2 folder\(s\) or file\(s\) reached again"):
        found = list_images(root)
    assert [p.relative_to(root.resolve()).as_posix() for p in found] == ["a/0.png", "a/1.png"]
    with pytest.warns(UserWarning, match="reached again"):
        assert pool_size(root) == 2


def test_walk_order_hidden_entries_and_fifos(tmp_path):
    root = tmp_path / "wild"
    for rel in ("b/1.png", "a/2.JPG", "a/sub/0.png", "0.png", ".hidden/x.png", "a/.h.png"):
        save_image(root / rel, 10, ext_format="PNG")
    (root / "notes.txt").write_text("not an image")
    os.mkfifo(root / "a" / "pipe.png")  # opening it would wait for a writer forever
    assert [p.relative_to(root.resolve()).as_posix() for p in list_images(root)] == [
        "0.png", "a/2.JPG", "a/sub/0.png", "b/1.png"]
    assert pool_size(root) == 4


def _tree(root: Path) -> Path:
    """cat/ and dog/ with 3 images each."""
    images(root / "cat", 3)
    images(root / "dog", 3, start=3)
    return root


def _count(ds) -> int:
    return len(ds.train) + len(ds.test)


def test_the_folder_dataset_with_links_to_its_own_class_folder_ends(tmp_path):
    root = _tree(tmp_path / "data")
    (root / "cat" / "loop").symlink_to(root / "cat")
    (root / "cat" / "sub").mkdir()
    (root / "cat" / "sub" / "up").symlink_to("..")
    with pytest.warns(UserWarning, match="reached again"):
        ds = load_dataset("folder", root, image_size=8)
    assert ds.info.class_names == ("cat", "dog") and _count(ds) == 6


def test_the_folder_dataset_never_follows_a_link_out(tmp_path, allowed):
    root = _tree(tmp_path / "data")
    images(tmp_path / "outside" / "x", 4, start=10)
    (root / "cat" / "sub").mkdir()
    (root / "cat" / "sub" / "out").symlink_to(tmp_path / "outside" / "x")
    (root / "evil").symlink_to(tmp_path / "outside")  # a class folder that leads out
    with pytest.warns(UserWarning, match=r"skipped 2 symlink\(s\) leading outside"):
        ds = load_dataset("folder", root, image_size=8)
    assert ds.info.class_names == ("cat", "dog") and _count(ds) == 6
    images(allowed / "birds", 2, start=20)
    (root / "bird").symlink_to(allowed / "birds")  # into an allowed folder: a class
    with pytest.warns(UserWarning, match="leading outside"):
        ds = load_dataset("folder", root, image_size=8)
    assert ds.info.class_names == ("bird", "cat", "dog") and _count(ds) == 8


def test_the_folder_dataset_keeps_an_inner_link_once(tmp_path):
    root = _tree(tmp_path / "data")
    images(root / "cat" / "real", 2, start=30)
    (root / "cat" / "alias").symlink_to("real")
    with pytest.warns(UserWarning, match="reached again"):
        ds = load_dataset("folder", root, image_size=8)
    assert _count(ds) == 8 and (ds.train.labels == 0).sum() + (ds.test.labels == 0).sum() == 5


def test_a_fashion_mnist_file_linking_out_of_its_folder_is_not_read(tmp_path):
    """The IDX and CIFAR readers open fixed names inside a data folder: a name that is a link
    to a file outside it and the allowed folders is refused before a byte is read."""
    from kdci_core.data import idx

    data = tmp_path / "fmnist"
    data.mkdir()
    (tmp_path / "outside").mkdir()
    secret = tmp_path / "outside" / "secret"
    secret.write_bytes(b"not yours")
    for name in idx.FILES.values():
        (data / name).symlink_to(secret)
    with pytest.raises(InputError, match=r"found a symlink to .*secret"):
        load_dataset("fashion-mnist", data)


def test_a_cifar_file_linking_out_of_its_folder_is_not_read(tmp_path):
    from kdci_core.data import cifar

    spec = cifar.SPECS["cifar10"]
    data = tmp_path / spec["folder"]
    data.mkdir()
    (tmp_path / "outside").mkdir()
    secret = tmp_path / "outside" / "secret"
    secret.write_bytes(b"not yours")
    for name in spec["train"] + spec["test"] + [spec["meta"]]:
        (data / name).symlink_to(secret)
    with pytest.raises(InputError, match=r"found a symlink to .*secret"):
        load_dataset("cifar10", tmp_path)
