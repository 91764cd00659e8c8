"""Why a class correction can help when the classes are balanced: the teacher's predicted class
shares on training images, clean and degraded (Gaussian blur + noise, as ``controlled_shift.py``
degrades them), with the agreement of its predictions with the true labels.

    python benchmarks/pseudo_labels.py --teacher FILE --teacher-arch lenet5    # Fashion-MNIST
    python benchmarks/pseudo_labels.py                                         # trains one (5 epochs)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from common import OUT, SHARED, machine, teacher_args, write_json
from kdci_core.data import load_dataset
from kdci_core.data.shift import degrade
from kdci_core.models.evaluation import predict_logits
from kdci_core.teachers import load_teacher

CONDITIONS = {"clean": {"blur": 0.0, "noise": 0.0}, "blur+noise": {"blur": 1.0, "noise": 0.1}}


def shares(pred: torch.Tensor, num_classes: int) -> list[float]:
    return (torch.bincount(pred, minlength=num_classes).float() / len(pred) * 100).tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--data-root", default=str(SHARED / "data" / "fashion-mnist"))
    ap.add_argument("--teacher", help="teacher file (default: trained here once, as the grids do)")
    ap.add_argument("--teacher-arch", default="lenet5")
    ap.add_argument("--teacher-epochs", type=int, default=5)
    ap.add_argument("--n", type=int, default=20_000, help="the first N training images are scored")
    ap.add_argument("--seed", type=int, default=0, help="the noise's seed")
    ap.add_argument("--device", default="auto", help="where the teacher is trained, when it is")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    started = time.time()
    teacher_file = teacher_args(args)[1]
    data = load_dataset(args.dataset, args.data_root)
    info = data.info
    teacher = load_teacher(teacher_file, args.teacher_arch).model
    images, labels = data.train.images[: args.n], data.train.labels[: args.n]
    rows = []
    for name, shift in CONDITIONS.items():
        x = images if name == "clean" else info.normalize(degrade(info.denormalize(images.clone()),
                                                                  seed=args.seed, **shift))
        pred = predict_logits(teacher, x, device="cpu").argmax(1)
        s = shares(pred, info.num_classes)
        rows.append({"condition": name, **shift, "shares_percent": s, "max_over_min": max(s) / max(min(s), 1e-9),
                     "agreement_percent": float((pred == labels).float().mean() * 100)})
    print(f"\nteacher {args.teacher_arch} ({teacher_file}) on {args.n} {args.dataset} training images; {machine()}")
    print(f"{'condition':<11} {'agree %':>8} {'min %':>6} {'max %':>6} {'max/min':>8}  shares per class %")
    for r in rows:
        s = r["shares_percent"]
        print(f"{r['condition']:<11} {r['agreement_percent']:8.1f} {min(s):6.1f} {max(s):6.1f} "
              f"{r['max_over_min']:8.1f}  {' '.join(f'{v:.1f}' for v in s)}")
    out = args.out or OUT / f"pseudo_labels-{args.dataset}.json"
    write_json(out, {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                     "machine": machine(), "total_time_s": time.time() - started, "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
