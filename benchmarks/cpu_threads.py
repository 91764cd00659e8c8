"""Training-step time of small models with 1 vs more intra-op CPU threads.

Why: the engine's CPU thread policy (kdci_core.common.device.configure_cpu_threads) uses one thread on
a 2-core machine. This measures one forward+backward per architecture and input size, and
reports the 1-minute load average so idle and busy machines can be told apart.

    python benchmarks/cpu_threads.py [--threads 1 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import REPO, machine, write_json

CASES = [("lenet5", 8, 64), ("lenet5", 28, 128), ("lenet5_half", 28, 128), ("wrn_16_2", 8, 128),
         ("resnet18", 28, 64)]


def step_ms(arch: str, size: int, batch: int, repeats: int) -> float:
    import torch

    from kdci_core.models import build_model

    torch.manual_seed(0)
    model = build_model(arch, num_classes=10, in_channels=1)
    x = torch.randn(batch, 1, size, size)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        model(x).logsumexp(1).mean().backward()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times[1:])


def main() -> None:

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, os.cpu_count() or 2])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "cpu_threads.json")
    ap.add_argument("--busy", type=int, default=0, help="spinning processes started alongside")
    args = ap.parse_args()
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        measure(args)
    finally:
        for p in spinners:
            p.kill()


def measure(args) -> None:
    import torch

    rows = []
    load = os.getloadavg()[0]
    print(f"busy processes: {args.busy}; load average (1 min) at start: {load:.2f}\n{'arch':<12} {'px':>3} {'batch':>5} "
          + " ".join(f"{f'{n} thr (ms)':>12}" for n in args.threads))
    for arch, size, batch in CASES:
        row = {"arch": arch, "size": size, "batch": batch, "ms": {}}
        for n in args.threads:
            torch.set_num_threads(n)
            row["ms"][n] = step_ms(arch, size, batch, args.repeats)
        rows.append(row)
        print(f"{arch:<12} {size:>3} {batch:>5} " + " ".join(f"{row['ms'][n]:>12.1f}" for n in args.threads))
    print(f"median of {args.repeats} forward+backward steps; {machine()}")
    write_json(args.out, {"machine": machine(), "load_average_1min": load, "busy": args.busy,
                          "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
