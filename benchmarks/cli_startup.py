"""How long the command line takes to answer, as a whole process (import included): the
commands that only read the run store must not pay for torch, nor must ``methods`` once its
metadata cache is written (``methods cold``: each repeat in a fresh KDCI_HOME, a cache miss;
``methods warm``: the cache written by an earlier call), nor ``distill --detach`` once the same
settings were checked by an earlier call (``distill --detach warm``: each repeat another seed,
as a sweep; ``cold``: each repeat in a fresh KDCI_HOME holding only the built-in teacher, so it
imports torch and checks in full).
Each detached run is cancelled as soon as its id is printed, and its worker's exit awaited, so
no worker competes with the next measurement. ``python -c pass`` is the interpreter's own floor.

    python benchmarks/cli_startup.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import OUT, machine, write_json

DETACH = ["distill", "--teacher", "builtin", "--dataset", "digits", "--method", "deepinv", "--kdci", "on",
          "--detach"]
COMMANDS = {"python -c pass": None, "--help": ["--help"], "runs list": ["runs", "list"],
            "runs show": ["runs", "show", "RUN"], "methods cold": ["methods"], "methods warm": ["methods"],
            "methods --markdown": ["methods", "--markdown"], "distill --help": ["distill", "--help"],
            "distill --detach cold": DETACH, "distill --detach warm": DETACH}
#: the commands each repeat of which runs in a fresh, empty KDCI_HOME (no cache)
COLD = {"methods cold", "distill --detach cold"}


def _cli(argv: list[str] | None) -> list[str]:
    return [sys.executable, "-c", "pass"] if argv is None else [sys.executable, "-m", "kdci_core", *argv]


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie no init reaps counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _settle(run_id: str, env: dict) -> None:
    """Cancel a detached run and wait until its worker process is gone (at most a minute)."""
    from kdci_core.runs import RunStore

    pid = RunStore(env["KDCI_HOME"]).get(run_id).status().get("pid")  # before the cancel clears it
    subprocess.run(_cli(["runs", "cancel", run_id]), env=env, capture_output=True)
    deadline = time.monotonic() + 60
    while pid and not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.2)


def _timed(argv: list[str] | None, env: dict, seed: int) -> float:
    """Seconds of one call; a detached run (with ``--seed seed``) is then cancelled and settled."""
    detach = argv is not None and "--detach" in argv
    argv = [*argv, "--seed", str(seed)] if detach else argv
    t0 = time.perf_counter()
    proc = subprocess.run(_cli(argv), env=env, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - t0
    if detach:
        _settle(proc.stdout.strip(), env)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "KDCI_HOME": home}
        run_id = subprocess.run([sys.executable, "-c", "from kdci_core.runs import RunStore; "
                                 "print(RunStore().create({'method': 'deepinv', 'kdci': True}).run_id)"],
                                env=env, capture_output=True, text=True, check=True).stdout.strip()
        # the built-in teacher, trained once here and copied into every fresh home: a user's
        # store has it after its first run, and a cold call must time the check, not training
        subprocess.run([sys.executable, "-c", "from kdci_core.teachers import builtin_teacher; "
                        "builtin_teacher()"], env=env, check=True, capture_output=True)
        rows = []
        for name, argv in COMMANDS.items():
            argv = None if argv is None else [run_id if a == "RUN" else a for a in argv]
            if name not in COLD:  # one untimed call first: the warm rows time a written cache
                _timed(argv, env, args.repeats)
            times = []
            for i in range(args.repeats):
                with tempfile.TemporaryDirectory() as fresh:
                    if name in COLD:
                        shutil.copytree(Path(home) / "teachers", Path(fresh) / "teachers")
                    times.append(_timed(argv, {**env, "KDCI_HOME": fresh} if name in COLD else env, i))
            rows.append({"command": name, "min_s": min(times), "median_s": statistics.median(times)})
    print(f"{'command':<22} {'min s':>7} {'median s':>9}")
    for r in rows:
        print(f"{r['command']:<22} {r['min_s']:7.2f} {r['median_s']:9.2f}")
    write_json(OUT / "cli_startup.json", {"machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()
