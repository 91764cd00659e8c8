"""Your own architectures: torchvision/timm teacher -> student pairs at 32 px on Fashion-MNIST
upsampled to 3 channels, each teacher trained here (``kdci teacher train --image-size 32
--in-channels 3``, which records the input spec its runs then follow), then short DeepInv and
DFND runs, KDCI off vs on, paired by seed.

    python benchmarks/byo_models.py --jobs 2 --cache byo.jsonl      # ../shared data, 3 seeds
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import (OUT, SHARED, ResultCache, finish, parser, print_table, print_telemetry, run_cli,
                    variant_row)

#: (teacher, student): one torchvision teacher into a timm student and the other way round
PAIRS = [("tv:resnet18", "timm:mobilenetv3_small_050"), ("timm:resnet10t", "tv:mobilenet_v3_small")]
VARIANTS = {"off": ["--kdci", "off"], "on": ["--kdci", "on"]}


def train(args, arch: str) -> tuple[Path, float]:
    """The teacher file of ``arch`` (trained once, then reused) and its test accuracy."""
    out = OUT / f"byo-teacher-{arch.replace(':', '_')}-{args.dataset}-32px-e{args.teacher_epochs}.safetensors"
    t0 = time.time()
    if out.exists():  # trained by an earlier run of this script: its metadata holds its accuracy
        from kdci_core.models.weights import read_checkpoint
        from kdci_core.teachers import metadata_accuracy

        acc = metadata_accuracy(read_checkpoint(out)[1])
    else:
        acc = run_cli(["teacher", "train", "--dataset", args.dataset, "--data-root", args.data_root,
                       "--arch", arch, "--epochs", str(args.teacher_epochs), "--image-size", "32",
                       "--in-channels", "3", "--device", args.device, "--out", str(out)])["test_accuracy"]
    print(f"teacher {arch}: {acc:.2f}% ({time.time() - t0:.0f} s) -> {out}", flush=True)
    return out, float(acc)


def main() -> None:
    ap = parser(__doc__.splitlines()[0], ["deepinv", "dfnd"])
    ap.set_defaults(dataset="fashion-mnist", epochs=5, steps_per_epoch=50, seeds=[0, 1, 2],
                    teacher_epochs=2)
    args = ap.parse_args()
    started = time.time()
    if not args.data_root:
        args.data_root = str(SHARED / "data" / "fashion-mnist")
    OUT.mkdir(parents=True, exist_ok=True)
    teachers = {t: train(args, t) for t, _ in PAIRS}
    # seed-major: every pair x method gets its first seed before any gets its second (a grid cut
    # short, on a slow machine, still covers every cell)
    grid = [(t, s, m, seed, v) for seed in args.seeds for t, s in PAIRS for m in args.methods for v in VARIANTS]
    jobs = [["distill", "--teacher", str(teachers[t][0]), "--teacher-arch", t, "--student", s,
             "--dataset", args.dataset, "--data-root", args.data_root, "--method", m,
             "--epochs", str(args.epochs), "--steps-per-epoch", str(args.steps_per_epoch),
             "--device", args.device, "--seed", str(seed), *VARIANTS[v],
             *[a for p in args.param for a in ("--param", p)]] for t, s, m, seed, v in grid]
    cache = ResultCache(args.cache)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(cache.run, jobs))
    runs = [{"method": f"{m} {t}->{s}", "seed": seed, "variant": v, "student_accuracy": r["student_accuracy"],
             "teacher_accuracy": r["teacher_accuracy"], "wall_time_s": r["wall_time_s"],
             "peak_memory_mb": r["peak_memory_mb"], "run_id": r["run_id"], "input_spec": r.get("input_spec"),
             "telemetry": r.get("kdci_telemetry"), "replayed": r["replayed"]}
            for (t, s, m, seed, v), r in zip(grid, results)]
    rows = []
    for label in dict.fromkeys(r["method"] for r in runs):
        def pick(v):
            return sorted((r for r in runs if r["method"] == label and r["variant"] == v), key=lambda r: r["seed"])
        rows += [variant_row(label, v, pick(v), pick("off"), "off") for v in VARIANTS]
    print_table(rows, f"{args.dataset} at 32 px, 3 channels: {args.epochs} x {args.steps_per_epoch} steps, "
                      f"seeds {args.seeds}; teachers " + ", ".join(f"{t} {a:.2f}%" for t, (_, a) in teachers.items()))
    print_telemetry(rows)
    args.teachers = {t: {"file": str(f), "accuracy": a} for t, (f, a) in teachers.items()}
    finish(args, "byo_models", runs, rows, started)


if __name__ == "__main__":
    main()
