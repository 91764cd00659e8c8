"""``kdci distill``: distil a student without the original data, here (with tqdm progress and a
line per epoch) or in a background worker (``--detach``: prints the run id, returns at once)."""

from __future__ import annotations

import sys

from ..distill import Callback
from .common import add_backend_arguments, add_run_arguments, config_from_args, write_json


class EpochLines(Callback):
    """One line per epoch on stderr (the command's own progress, beside tqdm's bar)."""

    def on_epoch_end(self, rec: dict) -> None:
        print(f"epoch {rec['epoch']:>3}  step {rec['step']:>6}  loss {rec['loss']:.4f}  "
              f"student {rec['student_accuracy']:.2f}%", file=sys.stderr)


def cmd_distill(args) -> int:
    cfg = config_from_args(args)
    if args.detach:
        from ..runs import get_backend, launch

        backend = get_backend(args.backend, ray_address=args.ray_address,
                              max_concurrent=args.max_concurrent)
        run_id = launch([cfg], backend, names=[args.name])[0]
        print(run_id)
        write_json(args.json, {"run_id": run_id, "status": "queued", "backend": args.backend})
        return 0
    from ..common.progress import TqdmProgress
    from ..runs import run_inline

    progress = TqdmProgress(enabled=not args.quiet)
    result = run_inline(cfg, progress=progress, callbacks=[] if args.quiet else [EpochLines()],
                        run_name=args.name)
    progress.close()
    print(f"run {result['run_id']}: {cfg.method} kdci={args.kdci} teacher {result['teacher_accuracy']:.2f}% "
          f"student {result['student_accuracy']:.2f}% ({result['wall_time_s']:.1f} s, "
          f"peak {result['peak_memory_mb']:.0f} MB, {result['device']})")
    write_json(args.json, result)
    return 0


def add_parser(sub) -> None:
    from ..distill import ABLATION_CHOICES, FUSION_CHOICES, DistillConfig

    d = DistillConfig()
    ds = sub.add_parser("distill", help="distil a student without the original data")
    add_run_arguments(ds)
    ds.add_argument("--kdci", required=True, choices=("on", "off"))
    ds.add_argument("--ablation", default="none", choices=ABLATION_CHOICES)
    ds.add_argument("--dictionary-source", help="another pre-trained model file for the dictionary")
    ds.add_argument("--dictionary-source-arch")
    ds.add_argument("--epochs", type=int, default=d.epochs)
    ds.add_argument("--steps-per-epoch", type=int, default=d.steps_per_epoch)
    ds.add_argument("--batch-size", type=int, default=d.batch_size)
    ds.add_argument("--lr", type=float, default=d.lr)
    ds.add_argument("--tau", type=float, help="KD temperature (default: the method's)")
    ds.add_argument("--attn-dim", type=int, default=d.attn_dim)
    ds.add_argument("--fusion", default=d.fusion, choices=FUSION_CHOICES)
    ds.add_argument("--no-amp", action="store_true", help="disable bfloat16 autocast on CUDA")
    ds.add_argument("--name", help="run name (default: generated)")
    ds.add_argument("--detach", action="store_true",
                    help="hand the run to a background worker, print its run id, return at once")
    ds.add_argument("--max-concurrent", type=int, help="local backend: runs at once (default: cores/2)")
    add_backend_arguments(ds)
    ds.set_defaults(func=cmd_distill)
