"""Helpers shared by the benchmark scripts: run the CLI in a fresh process per run (so peak
memory is per run), summarise seeds as mean +- std with paired KDCI-on minus KDCI-off gains."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run as `python benchmarks/x.py` from anywhere


def run_cli(args: list[str], env: dict | None = None) -> dict:
    """Run ``python -m kdci_core distill ...`` in its own process; return its --json result."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "kdci_core", *args, "--json", str(out), "--quiet"]
        proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, **(env or {})},
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        return json.loads(out.read_text())


def run_many(jobs: list[list[str]], parallel: int) -> list[dict]:
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        return list(pool.map(run_cli, jobs))


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values: list[float]) -> str:
    m, s = mean_std(values)
    return f"{m:6.2f} +- {s:5.2f}"


def machine() -> str:
    import platform

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {gpu}, "
            f"torch {torch.__version__}, KDCI_NUM_THREADS={os.environ.get('KDCI_NUM_THREADS', 'default')}")


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))
