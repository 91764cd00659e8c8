"""``kdci methods`` answers from a cache of the method metadata (kdci_core/cli/methods.py): the
first call imports the registry and writes it, later calls print the same bytes without torch;
an edit to the watched sources invalidates it, and a corrupt or unwritable cache only costs the
import."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from kdci_core.cli import main
from kdci_core.cli import methods as cli_methods

#: runs the command line in a fresh process, then says on stderr whether torch was loaded
PROBE = ("import sys; from kdci_core.cli import main\n"
         "code = main(sys.argv[1:])\n"
         "print('torch loaded' if 'torch' in sys.modules else 'no torch', file=sys.stderr)\n"
         "sys.exit(code)")


def _run(home, *argv):
    return subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                          env={**os.environ, "KDCI_HOME": str(home)}, timeout=600)


@pytest.fixture(scope="module")
def expected():
    """What the command printed before the cache: the table built from the classes."""
    data = cli_methods.build_table_data()
    return {False: cli_methods.render(data, False) + "\n", True: cli_methods.render(data, True) + "\n"}


@pytest.fixture(scope="module")
def warm_home(tmp_path_factory):
    """A KDCI_HOME whose cache the first (cold) ``methods`` call wrote; returns (home, its stdout)."""
    home = tmp_path_factory.mktemp("methods_home")
    proc = _run(home, "methods")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "torch loaded"  # the cold call imports the registry
    return home, proc.stdout


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("KDCI_HOME", str(tmp_path))
    return tmp_path


def test_the_cold_call_writes_the_cache_keyed_by_what_it_loaded(warm_home, expected):
    home, out = warm_home
    assert out == expected[False]
    entry = json.loads((home / "cache" / "methods.json").read_text())
    assert entry["schema"] == cli_methods.CACHE_SCHEMA and entry["version"] == cli_methods.__version__
    files = set(entry["files"])
    assert {"methods/base.py", "methods/synthesis.py", "methods/fast.py", "distill/presets.py"} <= files
    assert "data/wild.py" in files  # a module the methods import, outside the two globs
    assert [m["name"] for m in entry["methods"]] == [m["name"] for m in cli_methods.build_table_data()]


@pytest.mark.parametrize("markdown", [False, True])
def test_a_warm_call_loads_no_torch_and_prints_the_same_bytes(warm_home, expected, markdown):
    home, _ = warm_home
    proc = _run(home, "methods", *(["--markdown"] if markdown else []))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "no torch", proc.stderr
    assert proc.stdout == expected[markdown]


def test_the_warm_call_prints_what_the_cache_holds(warm_home, home, capsys):
    """The fast path really reads the entry; a wrong key makes it rebuild (and repair) it."""
    path = home / "cache" / "methods.json"
    path.parent.mkdir()
    entry = json.loads((warm_home[0] / "cache" / "methods.json").read_text())
    entry["methods"][0]["rows"][0][3] = "FROM-THE-CACHE"
    path.write_text(json.dumps(entry))
    assert main(["methods"]) == 0 and "FROM-THE-CACHE" in capsys.readouterr().out

    path.write_text(json.dumps(entry | {"key": "0" * 64}))
    assert main(["methods"]) == 0 and "FROM-THE-CACHE" not in capsys.readouterr().out
    assert cli_methods.read_cache() == json.loads(json.dumps(cli_methods.build_table_data()))


def _entry_with(**changes):
    files = sorted(cli_methods.watched_files())
    entry = {"schema": cli_methods.CACHE_SCHEMA, "version": cli_methods.__version__,
             "key": cli_methods.fingerprint(files), "files": files,
             "methods": json.loads(json.dumps(cli_methods.build_table_data()))}
    return json.dumps(entry | changes).encode()


@pytest.mark.parametrize("content", [
    b"", b"{not json", b"\xff\xfe\x00", b"[]", b"null", b'{"schema": 1}',
    pytest.param("files-not-a-list", id="files-not-a-list"),
    pytest.param("no-methods", id="no-methods"),
    pytest.param("bad-rows", id="bad-rows"),
    pytest.param("old-schema", id="old-schema"),
])
def test_a_corrupt_cache_falls_back_to_the_registry(home, expected, capsys, content):
    if content == "files-not-a-list":
        content = _entry_with(files="methods/base.py")
    elif content == "no-methods":
        content = _entry_with(methods=[])
    elif content == "bad-rows":
        content = _entry_with(methods=[{"name": "x", "kind": "y", "default_k": 1,
                                        "default_tau": 1.0, "rows": [["a", "b", 3, "d"]]}])
    elif content == "old-schema":
        content = _entry_with(schema=0)
    (home / "cache").mkdir()
    (home / "cache" / "methods.json").write_bytes(content)
    assert main(["methods"]) == 0
    assert capsys.readouterr().out == expected[False]
    assert cli_methods.read_cache() is not None  # rewritten


def test_a_directory_in_place_of_the_cache_or_an_unwritable_home_only_costs_the_import(
        tmp_path, monkeypatch, expected, capsys):
    (tmp_path / "cache" / "methods.json").mkdir(parents=True)  # unreadable and unreplaceable
    monkeypatch.setenv("KDCI_HOME", str(tmp_path))
    assert main(["methods", "--markdown"]) == 0 and capsys.readouterr().out == expected[True]

    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setenv("KDCI_HOME", str(not_a_folder))  # kdci_home() cannot create it
    assert cli_methods.write_cache(cli_methods.build_table_data()) is False
    assert main(["methods"]) == 0 and capsys.readouterr().out == expected[False]


def test_an_edit_to_a_watched_file_changes_the_key(tmp_path, monkeypatch):
    root = tmp_path / "kdci_core"
    for rel in cli_methods.watched_files():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(cli_methods.PACKAGE / rel, root / rel)
    files = cli_methods.watched_files(root)
    assert files == cli_methods.watched_files() and "distill/presets.py" in files
    key = cli_methods.fingerprint(files, root)

    presets = root / "distill" / "presets.py"
    original = presets.read_text()
    presets.write_text(original.replace("QUICK_LR = 0.01", "QUICK_LR = 0.02"))
    assert cli_methods.fingerprint(files, root) != key
    presets.write_text(original)
    os.utime(presets, (1, 1))  # only the time changed: the same key
    assert cli_methods.fingerprint(files, root) == key

    (root / "methods" / "extra.py").write_text("")  # a new method file
    assert cli_methods.fingerprint(cli_methods.watched_files(root), root) != key
    (root / "methods" / "extra.py").unlink()
    (root / "methods" / "plain.py").unlink()  # a file the entry lists is gone
    assert cli_methods.fingerprint(files, root) != key

    monkeypatch.setattr(cli_methods, "__version__", "0.0.0-other")
    shutil.copy2(cli_methods.PACKAGE / "methods" / "plain.py", root / "methods" / "plain.py")
    assert cli_methods.fingerprint(files, root) != key  # another package version
