"""Launch-to-first-point: how long after ``distill --detach`` (what the Runs page calls) the
first accuracy point of a background run appears in the run store, and where the time goes
(process start + imports, first epoch). Default: DeepInv on the built-in digits teacher with the
dashboard's default schedule (10 epochs x 50 steps).

    python benchmarks/launch_latency.py --repeats 3
    python benchmarks/launch_latency.py --backend ray --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import OUT, machine, write_json

from kdci_core.distill import DistillConfig
from kdci_core.runs import RunStore
from kdci_core.runs import get_backend, launch, wait_for


def one(store: RunStore, backend, cfg: DistillConfig) -> dict:
    t0 = time.time()
    [run_id] = launch([cfg], backend)
    submitted = time.time() - t0
    run, started, first = store.get(run_id), None, None
    while first is None and time.time() - t0 < 600:
        st = run.status()
        if started is None and st.get("status") == "running":
            started = time.time() - t0
        if run.metrics():
            first = time.time() - t0
        time.sleep(0.05)
    wait_for(store, [run_id], timeout=900)
    return {"run_id": run_id, "submit_s": submitted, "running_s": started, "first_point_s": first,
            "total_s": time.time() - t0, "status": run.status().get("status")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="local", choices=("local", "ray"))
    ap.add_argument("--method", default="deepinv")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--steps-per-epoch", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        store = RunStore(home)
        import os
        os.environ["KDCI_HOME"] = home
        from kdci_core.teachers import builtin_teacher
        builtin_teacher()  # trained once, outside the timing (the dashboard has it by then)
        backend = get_backend(args.backend, store, max_concurrent=1)
        cfg = DistillConfig(method=args.method, kdci=True, epochs=args.epochs,
                            steps_per_epoch=args.steps_per_epoch)
        rows = [one(store, backend, cfg) for _ in range(args.repeats)]
    print(f"\nlaunch to first point, {args.backend} backend, {args.method} on digits, "
          f"{args.epochs} x {args.steps_per_epoch} steps (first point = end of epoch 1)")
    print(f"{'repeat':>6} {'submit s':>9} {'running s':>10} {'first point s':>14} {'total s':>8}")
    for i, r in enumerate(rows):
        print(f"{i:>6} {r['submit_s']:9.2f} {r['running_s'] or float('nan'):10.2f} "
              f"{r['first_point_s'] or float('nan'):14.2f} {r['total_s']:8.1f}")
    med = statistics.median(r["first_point_s"] for r in rows if r["first_point_s"])
    print(f"median launch-to-first-point: {med:.2f} s on {machine()}")
    out = args.out or OUT / f"launch_latency-{args.backend}.json"
    write_json(out, {"args": {k: str(v) for k, v in vars(args).items()}, "machine": machine(),
                     "rows": rows, "median_first_point_s": med})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
