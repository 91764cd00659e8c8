"""Where the learning tests' thresholds come from: each method's student accuracy on the embedded
default (built-in digits teacher, KDCI off) at a budget, over seeds, with the time of each run.
The thresholds in tests/learning/test_learning.py sit well under the lowest seed.

    KDCI_NUM_THREADS=1 python benchmarks/learning_budgets.py                   # 4 x 50, seeds 0-2
    KDCI_NUM_THREADS=1 python benchmarks/learning_budgets.py --budget 2x50 --methods deepinv dfnd
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import OUT, machine, write_json
from kdci_core.distill import DistillConfig, Distiller
from kdci_core.methods import METHODS

LEARNING = ["cmi", "dafl", "deepinv", "dfnd", "fast", "mosaickd"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=LEARNING, choices=sorted(METHODS.names()))
    ap.add_argument("--budget", default="4x50", help="EPOCHSxSTEPS")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    epochs, steps = (int(v) for v in args.budget.split("x"))
    rows = []
    for method in args.methods:
        for seed in args.seeds:
            t0 = time.time()
            res = Distiller(DistillConfig(method=method, kdci=False, epochs=epochs, steps_per_epoch=steps,
                                          seed=seed)).fit()
            rows.append({"method": method, "seed": seed, "accuracy": res.student_accuracy,
                         "seconds": time.time() - t0})
            print(f"  {method} seed {seed}: {rows[-1]['accuracy']:.2f}% in {rows[-1]['seconds']:.1f} s", flush=True)
    print(f"\n{epochs} x {steps} steps, KDCI off, digits (built-in teacher); {machine()}")
    print(f"{'method':<10} {'accuracy per seed (%)':<28} {'lowest':>7} {'mean s':>7}")
    for method in args.methods:
        mine = [r for r in rows if r["method"] == method]
        accs = [r["accuracy"] for r in mine]
        print(f"{method:<10} {', '.join(f'{a:.1f}' for a in accs):<28} {min(accs):7.1f} "
              f"{sum(r['seconds'] for r in mine) / len(mine):7.1f}")
    out = args.out or OUT / f"learning_budgets-{args.budget}.json"
    write_json(out, {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                     "machine": machine(), "runs": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
