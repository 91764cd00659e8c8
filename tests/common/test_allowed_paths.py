"""The allowed-folder rule of the dashboard's path fields: inside passes (resolved), outside, a
``..`` escape and an escaping symlink are refused naming the field, the folders and the path;
the operator's list (environment, settings.toml) replaces the defaults but keeps $KDCI_HOME."""

from __future__ import annotations

import os

import pytest

from kdci_core.common.allowed_paths import allowed_roots, check_allowed, default_roots
from kdci_core.common.errors import InputError
from tests.helpers import REPO, SHARED


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh $KDCI_HOME, no operator list, scikit-learn's data home somewhere known."""
    home = tmp_path / "home"
    monkeypatch.setenv("KDCI_HOME", str(home))
    monkeypatch.delenv("KDCI_ALLOWED_ROOTS", raising=False)
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "sk"))
    return home


def test_defaults_are_the_projects_data_folders(home, tmp_path):
    roots = allowed_roots()
    assert roots[0] == home.resolve()
    assert SHARED.resolve() in roots and (REPO / "data").resolve() in roots
    assert (tmp_path / "sk").resolve() in roots
    assert not (tmp_path / "sk").exists()  # listed, never created
    assert len(default_roots()) == 5


def test_inside_passes_resolved_outside_is_refused(home, tmp_path):
    inside = home / "data" / "x"
    inside.mkdir(parents=True)
    assert check_allowed(str(home / "data" / "." / "x"), "--data-root") == inside.resolve()
    assert check_allowed(SHARED / "data" / "fashion-mnist", "--data-root").is_relative_to(SHARED.resolve())
    with pytest.raises(InputError) as err:
        check_allowed("/etc/passwd", "--data-root")
    msg = str(err.value)
    assert msg.startswith("--data-root: expected a path under one of the folders")
    assert str(home.resolve()) in msg and "'/etc/passwd'" in msg and "KDCI_ALLOWED_ROOTS" in msg


def test_dotdot_cannot_escape(home):
    (home / "a").mkdir(parents=True)
    sneaky = f"{home}/a/../../../etc"
    with pytest.raises(InputError, match=r"--wild-data: .*'.*/a/\.\./\.\./\.\./etc' \(which resolves to /"):
        check_allowed(sneaky, "--wild-data")
    assert check_allowed(f"{home}/a/../a", "--wild-data") == (home / "a").resolve()


def test_a_symlink_out_of_an_allowed_folder_is_refused(home, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    home.mkdir(parents=True, exist_ok=True)
    (home / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InputError, match="which resolves to"):
        check_allowed(home / "link", "--data-root")
    with pytest.raises(InputError):
        check_allowed(home / "link" / "file.pth", "--inception-weights")


def test_environment_list_replaces_the_defaults_but_keeps_home(home, tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("KDCI_ALLOWED_ROOTS", f"{a}{os.pathsep}{os.pathsep}{b}")
    assert allowed_roots() == [home.resolve(), a.resolve(), b.resolve()]
    assert check_allowed(b / "imgs", "--wild-data") == (b / "imgs").resolve()
    with pytest.raises(InputError):
        check_allowed(SHARED / "data", "--data-root")  # a default, no longer allowed


def test_settings_file_list(home, tmp_path, monkeypatch):
    home.mkdir(parents=True, exist_ok=True)
    (home / "settings.toml").write_text(f'allowed_roots = ["{tmp_path / "c"}", "rel"]\n')
    monkeypatch.setenv("KDCI_ALLOWED_ROOTS", str(tmp_path / "a"))
    assert allowed_roots() == [home.resolve(), (tmp_path / "a").resolve(), (tmp_path / "c").resolve(),
                               (home / "rel").resolve()]
    monkeypatch.delenv("KDCI_ALLOWED_ROOTS")
    assert check_allowed(tmp_path / "c" / "w.pth", "--inception-weights") == (tmp_path / "c" / "w.pth")
    with pytest.raises(InputError):
        check_allowed(tmp_path / "a", "--data-root")


@pytest.mark.parametrize("text", ['allowed_roots = "/tmp"', "allowed_roots = [1]", "allowed_roots = ["])
def test_a_broken_settings_file_is_named(home, text):
    home.mkdir(parents=True, exist_ok=True)
    (home / "settings.toml").write_text(text)
    with pytest.raises(InputError, match="settings.toml: expected"):
        check_allowed(home, "--data-root")


def test_wild_sources_that_are_not_paths_pass_as_they_are(home, tmp_path):
    from kdci_core.data.wild import check_wild_source

    assert check_wild_source(None) is None and check_wild_source("  ") is None
    assert check_wild_source("default") == "default"
    assert check_wild_source("dataset:fashion-mnist") == "dataset:fashion-mnist"
    assert check_wild_source(str(home / "imgs")) == str((home / "imgs").resolve())
    with pytest.raises(InputError, match="^--wild-data: "):
        check_wild_source(str(tmp_path / "elsewhere"))
