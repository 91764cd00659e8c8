"""The command line's own contract: every command has --help, ``--json -`` puts the JSON alone
on stdout, ``runs list`` has a header row, and the commands that only read the run store load
neither torch nor the loop."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kdci_core.cli import COMMANDS, main


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0 and "usage" in capsys.readouterr().out


def test_json_dash_writes_only_json_to_stdout(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("KDCI_HOME", str(tmp_path))
    from kdci_core.runs import RunStore

    RunStore(tmp_path).create({"method": "deepinv", "kdci": True, "seed": 3, "epochs": 2})
    assert main(["runs", "list", "--json", "-"]) == 0
    out, err = capfd.readouterr()
    assert json.loads(out)["runs"][0]["seed"] == 3  # stdout is the JSON and nothing else
    assert err.splitlines()[0].split()[:4] == ["RUN", "STATUS", "METHOD", "KDCI"]  # the table went to stderr
    assert not (tmp_path / "-").exists()


def test_runs_list_has_a_header_row(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KDCI_HOME", str(tmp_path))
    assert main(["runs", "list"]) == 0 and capsys.readouterr().out.strip() == "no runs"
    from kdci_core.runs import RunStore

    RunStore(tmp_path).create({"method": "dfnd", "kdci": False, "seed": 0, "epochs": 1})
    assert main(["runs", "list"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.startswith("RUN") and "dfnd" in row and " off " in row


@pytest.mark.parametrize("argv", [["--help"], ["runs", "list"], ["runs", "show", "nope"],
                                  ["runs", "export", "--tensorboard", "tb", "nope"]])
def test_store_commands_do_not_load_torch(argv, tmp_path):
    code = ("import sys; from kdci_core.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print('torch loaded' if 'torch' in sys.modules else 'no torch', file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          env={"KDCI_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.stderr.strip().splitlines()[-1] == "no torch", proc.stderr


def test_runs_tag_and_list_by_tag_with_queue_positions(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KDCI_HOME", str(tmp_path))
    from kdci_core.runs import RunStore

    store = RunStore(tmp_path)
    a = store.create({"method": "dfnd", "kdci": False, "seed": 0, "epochs": 1, "steps_per_epoch": 4})
    b = store.create({"method": "dfnd", "kdci": True, "seed": 0, "epochs": 1, "steps_per_epoch": 4})
    assert main(["runs", "tag", b.run_id, "--tags", "sweep, k8", "--notes", "second"]) == 0
    assert "tags k8, sweep; notes second" in capsys.readouterr().out
    assert main(["runs", "list", "--tag", "k8"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert "STEP" in header and "ETA/QUEUE" in header
    assert len(rows) == 1 and b.run_id in rows[0] and "#2 in queue" in rows[0] and "0/4" in rows[0]
    assert main(["runs", "list"]) == 0
    assert "#1 in queue" in next(r for r in capsys.readouterr().out.splitlines() if a.run_id in r)
    assert main(["runs", "tag", a.run_id]) != 0
    assert "give --tags and/or --notes" in capsys.readouterr().err


def test_methods_plain_table_has_a_header(tmp_path, monkeypatch, capsys):
    """``kdci methods`` printed its rows under no header: the columns are named now, and each
    row's cells start under their header."""
    monkeypatch.setenv("KDCI_HOME", str(tmp_path))
    assert main(["methods"]) == 0
    header, first = capsys.readouterr().out.splitlines()[:2]
    assert header.split()[:5] == ["METHOD", "KIND", "K", "KD", "T"] and header.rstrip().endswith("SOURCE")
    assert first.split()[0] in ("cmi", "dafl", "deepinv", "dfnd", "fast", "mosaickd")
    assert first.index("student lr") == header.index("PARAMETER")


@pytest.mark.parametrize("argv", [["methods"], ["runs", "list"], ["--help"]])
def test_a_closed_pipe_ends_quietly(argv, tmp_path):
    """``kdci runs list | head -1``: the reader goes away; the command ends with 141 (as a shell's
    own tools) or 0, without a BrokenPipeError traceback. The pipe's read end is closed before
    the command starts, so every write meets a closed pipe (no race with a reader)."""
    import os

    from kdci_core.runs import RunStore

    store = RunStore(tmp_path)
    for seed in range(3):
        store.create({"method": "deepinv", "kdci": True, "seed": seed, "epochs": 2})
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "kdci_core", *argv], stdout=write, stderr=subprocess.PIPE,
                              env={**os.environ, "KDCI_HOME": str(tmp_path)}, timeout=120)
    finally:
        os.close(write)
    err = proc.stderr.decode()
    assert proc.returncode in (0, 141), (proc.returncode, err)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_runs_list_flags_a_collapsed_student(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KDCI_HOME", str(tmp_path))
    from kdci_core.runs import RunStore

    run = RunStore(tmp_path).create({"method": "dfnd", "kdci": False, "seed": 0, "epochs": 1})
    run.set_status("running")
    run.write_result({"student_accuracy": 10.0, "prediction_counts": [0, 9, 1], "class_names": ["a", "Shirt", "c"]})
    run.set_status("finished")
    assert main(["runs", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "    collapsed: the student predicts Shirt for 90% of the test images"
