"""How long the command line takes to answer, as a whole process (import included): the
commands that only read the run store must not pay for torch, nor must ``methods`` once its
metadata cache is written (``methods cold``: each repeat in a fresh KDCI_HOME, a cache miss;
``methods warm``: the cache written by an earlier call).

    python benchmarks/cli_startup.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from common import OUT, machine, write_json

COMMANDS = {"--help": ["--help"], "runs list": ["runs", "list"], "runs show": ["runs", "show", "RUN"],
            "methods cold": ["methods"], "methods warm": ["methods"],
            "methods --markdown": ["methods", "--markdown"], "distill --help": ["distill", "--help"]}
#: the commands each repeat of which runs in a fresh, empty KDCI_HOME (no cache)
COLD = {"methods cold"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "KDCI_HOME": home}
        run_id = subprocess.run([sys.executable, "-c", "from kdci_core.runs import RunStore; "
                                 "print(RunStore().create({'method': 'deepinv', 'kdci': True}).run_id)"],
                                env=env, capture_output=True, text=True, check=True).stdout.strip()
        rows = []
        for name, argv in COMMANDS.items():
            argv = [run_id if a == "RUN" else a for a in argv]
            if name not in COLD:  # one untimed call first: the warm rows time a written cache
                subprocess.run([sys.executable, "-m", "kdci_core", *argv], env=env, capture_output=True)
            times = []
            for _ in range(args.repeats):
                with tempfile.TemporaryDirectory() as fresh:
                    run_env = {**env, "KDCI_HOME": fresh} if name in COLD else env
                    t0 = time.perf_counter()
                    subprocess.run([sys.executable, "-m", "kdci_core", *argv], env=run_env,
                                   capture_output=True, check=True)
                    times.append(time.perf_counter() - t0)
            rows.append({"command": name, "min_s": min(times), "median_s": statistics.median(times)})
    print(f"{'command':<19} {'min s':>7} {'median s':>9}")
    for r in rows:
        print(f"{r['command']:<19} {r['min_s']:7.2f} {r['median_s']:9.2f}")
    write_json(OUT / "cli_startup.json", {"machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()
