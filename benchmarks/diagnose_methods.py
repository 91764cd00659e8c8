"""The shift of every method's substitution data (the paper's Figure 1): FID with its extractor,
class imbalance under teacher pseudo-labels, and the K curve's recommended K against the
paper's default, one ``diagnose`` per method in its own process.

    python benchmarks/diagnose_methods.py --dataset digits
    python benchmarks/diagnose_methods.py --dataset fashion-mnist --rounds 8
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from common import OUT, SHARED, machine, teacher_args, write_json

from kdci_core.methods import METHODS


def diagnose(args, method: str) -> dict:
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "d.json"
        cmd = [sys.executable, "-m", "kdci_core", "diagnose", *teacher_args(args), "--dataset",
               args.dataset, "--method", method, "--rounds", str(args.rounds), "--k-curve",
               "--fid", args.fid, "--seed", str(args.seed), "--json", str(out), "--quiet",
               *(["--data-root", args.data_root] if args.data_root else [])]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
        return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--data-root")
    ap.add_argument("--teacher")
    ap.add_argument("--teacher-arch", default="lenet5")
    ap.add_argument("--teacher-epochs", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--methods", nargs="+", default=METHODS.names())
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--fid", default="auto", choices=("auto", "inception", "teacher"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.dataset == "fashion-mnist" and not args.data_root:
        args.data_root = str(SHARED / "data" / "fashion-mnist")
    started, rows = time.time(), []
    for m in args.methods:
        t0 = time.time()
        d = diagnose(args, m)
        imb = d["proportions"]["imbalance"]["substitution"]
        dominant = d["proportions"]["class_names"][imb["dominant_class"]]
        rows.append({"method": m, "kind": d["kind"], "n_images": d["substitution"]["n_images"],
                     "fid": d["fid"]["value"],
                     "fid_real": (d["fid_real_data"] or {}).get("value"), "extractor": d["fid"]["extractor_name"],
                     "n_reference": d["fid"]["n_reference"], "fid_warning": d["fid"]["warning"],
                     "normalised_entropy": imb["normalised_entropy"], "kl_to_uniform": imb["kl_to_uniform"],
                     "max_min_ratio": imb["max_min_ratio"], "empty_classes": imb["empty_classes"],
                     "dominant": f"{dominant} {100 * imb['dominant_share']:.1f}%",
                     "recommended_k": d["k_curve"]["recommended_k"], "k_grid": d["k_curve"]["ks"],
                     "paper_k": METHODS.get(m).default_k, "seconds": time.time() - t0,
                     "original_entropy": d["proportions"]["imbalance"]["original"]["normalised_entropy"]})
    print(f"\n{args.dataset}: substitution data per method (seed {args.seed}, {args.rounds} rounds for "
          f"generation methods); FID on {rows[0]['extractor']} against {rows[0]['n_reference']} test images")
    print(f"{'method':<9} {'kind':<10} {'images':>6} {'FID':>7} {'real':>6} {'H/logC':>7} {'KL':>6} {'max/min':>8} "
          f"{'empty':>5}  {'largest class':<18} {'K rec':>5} {'K paper':>7} {'s':>5}")
    for r in rows:
        ratio = "inf" if r["max_min_ratio"] is None else f"{r['max_min_ratio']:.1f}"
        print(f"{r['method']:<9} {r['kind']:<10} {r['n_images']:>6} {r['fid']:7.1f} {r['fid_real']:6.1f} "
              f"{r['normalised_entropy']:7.3f} {r['kl_to_uniform']:6.3f} {ratio:>8} {r['empty_classes']:>5}  "
              f"{r['dominant']:<18} {r['recommended_k']:>5} {r['paper_k']:>7} {r['seconds']:5.0f}")
    out = args.out or OUT / f"diagnose_methods-{args.dataset}.json"
    write_json(out, {"args": {k: str(v) for k, v in vars(args).items()}, "machine": machine(),
                     "total_time_s": time.time() - started, "rows": rows})
    print(f"\n{len(rows)} methods in {time.time() - started:.0f} s on {machine()}\nwrote {out}")


if __name__ == "__main__":
    main()
