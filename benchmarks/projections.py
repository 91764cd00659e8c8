"""Wall time of the dashboard's t-SNE and UMAP projections (kdci_core.diagnostics.projections).

Why: the dictionary page embeds up to 5,000 samples; the target is under 30 s per projection on
a 2-core CPU. Each row is ``project(..., cache=False)`` on a seeded 10-cluster gaussian mixture;
UMAP is warmed up once first, so its rows are steady state. UMAP's one-off costs (import and
the numba compile of its first fit) are measured apart, in a fresh process.

    python benchmarks/projections.py [--sizes 1000 2000 5000] [--dims 10 64] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import REPO, machine, write_json

#: A fresh interpreter: time `import umap`, a first fit (compiles) and a second fit (compiled).
COMPILE_PROBE = """
import json, time
import numpy as np
t0 = time.perf_counter()
import umap
t1 = time.perf_counter()
x = np.random.default_rng(0).normal(size=(100, 10))
umap.UMAP(n_components=2, random_state=0).fit_transform(x)
t2 = time.perf_counter()
umap.UMAP(n_components=2, random_state=1).fit_transform(x)
t3 = time.perf_counter()
# above 4096 points UMAP takes another code path (NN-descent) with kernels of its own
big = np.random.default_rng(1).normal(size=(5000, 10)).astype(np.float32)
umap.UMAP(n_components=2, random_state=0).fit_transform(big)
t4 = time.perf_counter()
umap.UMAP(n_components=2, random_state=1).fit_transform(big)
t5 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_fit_s": t2 - t1, "second_fit_s": t3 - t2,
                  "first_big_fit_s": t4 - t3, "second_big_fit_s": t5 - t4}))
"""


def mixture(n: int, d: int, seed: int = 0, clusters: int = 10):
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(clusters, d))
    return (centres[rng.integers(clusters, size=n)] + rng.normal(size=(n, d))).astype(np.float32)


def umap_one_off() -> dict:
    """Import and numba-compile time of UMAP in a fresh process (numba's disk cache may help)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", COMPILE_PROBE], cwd=REPO, check=False,
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"UMAP probe failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["compile_s"] = r["first_fit_s"] - r["second_fit_s"]
    r["compile_big_s"] = r["first_big_fit_s"] - r["second_big_fit_s"]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", type=int, default=[1000, 2000, 5000])
    ap.add_argument("--dims", nargs="+", type=int, default=[10, 64])
    ap.add_argument("--methods", nargs="+", default=["tsne", "umap"],
                    choices=["pca", "tsne", "umap"])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--target", type=float, default=30.0, help="seconds a projection may take")
    ap.add_argument("--skip-compile", action="store_true", help="skip the UMAP one-off probe")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "projections.json")
    args = ap.parse_args()

    from kdci_core.diagnostics.projections import clear_cache, project

    load = os.getloadavg()[0]
    print(f"load average (1 min) at start: {load:.2f}")
    one_off = None
    if "umap" in args.methods and not args.skip_compile:
        one_off = umap_one_off()
        print(f"UMAP one-off (fresh process): import {one_off['import_s']:.1f} s, first fit on 100 "
              f"points {one_off['first_fit_s']:.1f} s, second {one_off['second_fit_s']:.2f} s "
              f"-> compile ~ {one_off['compile_s']:.1f} s; 5,000 points: first {one_off['first_big_fit_s']:.1f} s, "
              f"second {one_off['second_big_fit_s']:.1f} s -> compile ~ {one_off['compile_big_s']:.1f} s more")
    if "umap" in args.methods:  # pay both compiles here, not in the first timed rows
        project(mixture(100, 10), "umap", cache=False)
        project(mixture(5000, 10, seed=9), "umap", cache=False)
    clear_cache(disk=False)

    rows = []
    print(f"\n{'method':<6} {'N':>6} {'D':>4} {'median s':>9} {'min s':>7} {'max s':>7}  "
          f"vs {args.target:g} s")
    for method in args.methods:
        for n in args.sizes:
            for d in args.dims:
                x = mixture(n, d)
                times = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    p = project(x, method, cache=False)
                    times.append(time.perf_counter() - t0)
                    assert not p.cached and p.points.shape == (n, 2)
                med = statistics.median(times)
                row = {"method": method, "n": n, "d": d, "seconds": times, "median_s": med,
                       "pass": med < args.target, "params": p.params}
                rows.append(row)
                print(f"{method:<6} {n:>6} {d:>4} {med:>9.2f} {min(times):>7.2f} "
                      f"{max(times):>7.2f}  {'PASS' if row['pass'] else 'FAIL'}")
    print(f"\n{args.repeats} repeat(s) per row, cache bypassed; {machine()}")
    write_json(args.out, {"args": {k: str(v) if isinstance(v, Path) else v
                                   for k, v in vars(args).items()},
                          "machine": machine(), "load_average_1min": load,
                          "umap_one_off": one_off, "target_s": args.target, "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
