"""KDCI off vs on for DeepInversion and DFND over several seeds.

Prints one row per method: student accuracy (mean +- std over seeds) with KDCI off and on, the
paired gain (on - off, same seed) with its per-seed values, and the wall-time and peak-memory
ratios on/off. Writes every run and the summary to JSON.

    python benchmarks/kdci_effect.py --dataset digits                       # CPU, minutes
    python benchmarks/kdci_effect.py --dataset fashion-mnist --data-root ../shared/data/fashion-mnist
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, SHARED, fmt, machine, mean_std, run_many, write_json  # noqa: E402


def teacher_args(args) -> list[str]:
    if args.dataset == "digits" and not args.teacher:
        return ["--teacher", "builtin"]
    if args.teacher:
        return ["--teacher", args.teacher, "--teacher-arch", args.teacher_arch]
    # train (once, cached) a teacher the project trains itself
    from kdci_core.device import resolve_device
    from kdci_core.teachers import train_teacher

    out = REPO / "benchmarks" / "out" / f"teacher-{args.dataset}-{args.teacher_arch}-e{args.teacher_epochs}.safetensors"
    if not out.exists():
        t0 = time.time()
        s = train_teacher(args.dataset, args.teacher_arch, epochs=args.teacher_epochs, out=out,
                          data_root=args.data_root, device=resolve_device(args.device))
        print(f"trained teacher {args.teacher_arch} on {args.dataset}: {s['test_accuracy']:.2f}% "
              f"in {time.time() - t0:.0f} s -> {out}")
    return ["--teacher", str(out), "--teacher-arch", args.teacher_arch]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--data-root")
    ap.add_argument("--teacher", help="teacher file (default: built-in for digits, else trained here)")
    ap.add_argument("--teacher-arch", default="lenet5")
    ap.add_argument("--teacher-epochs", type=int, default=5)
    ap.add_argument("--student", default="lenet5_half")
    ap.add_argument("--methods", nargs="+", default=["deepinv", "dfnd"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--steps-per-epoch", type=int, default=50)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (one process each)")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="method hyperparameter passed to every run (repeatable)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.dataset == "fashion-mnist" and not args.data_root:
        args.data_root = str(SHARED / "data" / "fashion-mnist")

    common = [*teacher_args(args), "--student", args.student, "--dataset", args.dataset,
              "--epochs", str(args.epochs), "--steps-per-epoch", str(args.steps_per_epoch),
              "--device", args.device, *(["--data-root", args.data_root] if args.data_root else []),
              *[a for p in args.param for a in ("--param", p)]]
    grid = [(m, s, k) for m in args.methods for s in args.seeds for k in ("off", "on")]
    t0 = time.time()
    results = run_many([["distill", *common, "--method", m, "--seed", str(s), "--kdci", k]
                        for m, s, k in grid], args.jobs)
    runs = [{"method": m, "seed": s, "kdci": k, "student_accuracy": r["student_accuracy"],
             "teacher_accuracy": r["teacher_accuracy"], "wall_time_s": r["wall_time_s"],
             "peak_memory_mb": r["peak_memory_mb"], "device": r["device"], "run_id": r["run_id"]}
            for (m, s, k), r in zip(grid, results)]

    summary = []
    header = (f"{'method':<8} {'KDCI off':>16} {'KDCI on':>16} {'gain (paired)':>16}  "
              f"{'per-seed gains':<24} {'time on/off':>11} {'mem on/off':>10}")
    print(f"\n{args.dataset}: {args.student} from {common[1]} ({results[0]['teacher_accuracy']:.2f}%), "
          f"{args.epochs} epochs x {args.steps_per_epoch} steps, seeds {args.seeds}\n{header}")
    for m in args.methods:
        by = {k: sorted((r for r in runs if r["method"] == m and r["kdci"] == k), key=lambda r: r["seed"])
              for k in ("off", "on")}
        off = [r["student_accuracy"] for r in by["off"]]
        on = [r["student_accuracy"] for r in by["on"]]
        gains = [b - a for a, b in zip(off, on)]
        t_ratio = mean_std([b["wall_time_s"] for b in by["on"]])[0] / mean_std([a["wall_time_s"] for a in by["off"]])[0]
        m_ratio = mean_std([b["peak_memory_mb"] for b in by["on"]])[0] / mean_std([a["peak_memory_mb"] for a in by["off"]])[0]
        row = {"method": m, "off_mean": mean_std(off)[0], "off_std": mean_std(off)[1],
               "on_mean": mean_std(on)[0], "on_std": mean_std(on)[1], "gain_mean": mean_std(gains)[0],
               "gain_std": mean_std(gains)[1], "gains": gains, "time_ratio": t_ratio,
               "memory_ratio": m_ratio, "seeds": args.seeds}
        summary.append(row)
        print(f"{m:<8} {fmt(off):>16} {fmt(on):>16} {fmt(gains):>16}  "
              f"{' '.join(f'{g:+.2f}' for g in gains):<24} {t_ratio:>11.2f} {m_ratio:>10.3f}")
    total = time.time() - t0
    print(f"\n{len(runs)} runs in {total:.0f} s on {machine()}")
    out = args.out or REPO / "benchmarks" / "out" / f"kdci_effect-{args.dataset}.json"
    write_json(out, {"args": vars(args) | {"out": str(out)}, "machine": machine(),
                     "total_time_s": total, "summary": summary, "runs": runs})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
