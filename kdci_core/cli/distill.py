"""``kdci distill``: distil a student without the original data, here (with tqdm progress and a
line per epoch) or in a background worker (``--detach``: prints the run id, returns at once: with
the settings checked before, without importing torch, ``admit.py``)."""

from __future__ import annotations

import sys

from .common import add_backend_arguments, add_run_arguments, write_json


def epoch_lines(write):
    """A loop callback writing one line per epoch with ``write`` (above tqdm's bars, on stderr)."""
    from ..distill import Callback

    class EpochLines(Callback):
        def on_epoch_end(self, rec) -> None:
            write(f"epoch {rec.epoch:>3}  step {rec.step:>6}  loss {rec.loss:.4f}  "
                  f"student {rec.student_accuracy:.2f}%")
    return EpochLines()


def input_line(recorded: dict | None) -> str:
    """A run's input spec for people: each value and where it came from."""
    from ..teachers.input_spec import InputSpec

    return InputSpec.from_dict(recorded).describe() if recorded else "the dataset's"


def cmd_distill(args) -> int:
    from . import admit, facts

    known = facts.load()
    if args.detach and not args.dry_run and "torch" not in sys.modules:
        config = admit.fast(args, known)  # an earlier full check of the same settings: no torch
        if config is not None:
            return detach(args, config)
    cfg = admit.validated(args, known)  # every check, before a run or a backend exists
    if args.dry_run:
        import json

        from ..teachers.input_spec import spec_of

        print(f"input: {spec_of(cfg).describe()}", file=sys.stderr)  # where each value comes from
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    if args.detach:
        return detach(args, cfg.to_dict())
    from ..common.progress import TqdmProgress
    from ..runs import run_inline

    progress = TqdmProgress(enabled=not args.quiet)
    done = run_inline(cfg, progress=progress, callbacks=[] if args.quiet else [epoch_lines(progress.write)],
                      run_name=args.name)
    progress.close()
    r = done.result
    print(f"run {done.run_id}: {cfg.method} kdci={args.kdci} teacher {r.teacher_accuracy:.2f}% "
          f"student {r.student_accuracy:.2f}% ({r.wall_time_s:.1f} s, "
          f"peak {r.peak_memory_mb:.0f} MB, {r.device})")
    print(f"input: {input_line(r.input_spec)}")
    write_json(args.json, done.to_json())
    return 0


def detach(args, config: dict) -> int:
    """Create the run of a validated ``config`` and hand it to a worker (nothing here imports torch)."""
    from ..runs.backends import get_backend
    from ..runs.submit import submit_new

    backend = get_backend(args.backend, ray_address=args.ray_address, max_concurrent=args.max_concurrent)
    run_id = submit_new(backend, [config], [args.name])[0]
    print(run_id, flush=True)
    write_json(args.json, {"run_id": run_id, "status": "queued", "backend": args.backend})
    return 0


def add_parser(sub) -> None:
    from .facts import load

    known = load()  # the engine's choices and defaults: cached, so no torch once written
    choices, d = known.choices, known.defaults
    ds = sub.add_parser("distill", help="distil a student without the original data")
    add_run_arguments(ds, choices)
    ds.add_argument("--kdci", required=True, choices=("on", "off"), help="KDCI's causal intervention "
                    "on the student's logits, or the method alone")
    ds.add_argument("--ablation", default="none", choices=choices["ablation"],
                    help="replace one part of KDCI (needs --kdci on)")
    ds.add_argument("--dictionary-source", help="another pre-trained model file to build the "
                    "dictionary from (default: the teacher)")
    ds.add_argument("--dictionary-source-arch", help="its architecture (default: none; required "
                    "with --dictionary-source, except an .onnx file)")
    ds.add_argument("--epochs", type=int, help="default: the preset's (quick 10, paper 200)")
    ds.add_argument("--steps-per-epoch", type=int, help="default: the preset's (quick 50, paper 400)")
    ds.add_argument("--batch-size", type=int, help="default: the preset's (quick 128, paper 256)")
    ds.add_argument("--lr", type=float, help="student SGD learning rate (default: the preset's: quick "
                                             "0.01, paper the method's reference)")
    ds.add_argument("--weight-decay", type=float, help="the student's (default: the method's reference)")
    ds.add_argument("--kdci-weight-decay", type=float,
                    help="KDCI's attention, in the student's optimiser (default: the student's)")
    ds.add_argument("--augment", choices=choices["augment"],
                    help="student-side augmentation of the substitution data (default: the dataset's)")
    ds.add_argument("--tau", type=float, help="KD temperature (default: the method's)")
    ds.add_argument("--attn-dim", type=int, default=d["attn_dim"], help="width of KDCI's attention")
    ds.add_argument("--fusion", default=d["fusion"], choices=choices["fusion"],
                    help="how the intervention's correction joins the logits")
    ds.add_argument("--attn-input", default=d["attn_input"], choices=choices["attn_input"],
                    help="what KDCI's attention reads: raw logits (the paper), logits / tau, or "
                         "layer-normalised logits")
    ds.add_argument("--attn-init-gain", type=float, default=d["attn_init_gain"],
                    help="scales the attention's default initialisation (1: PyTorch's)")
    ds.add_argument("--correction", default=d["correction"], choices=choices["correction"],
                    help="data-level shift correction, with KDCI on or off: balanced (class-balanced "
                         "resampling by teacher pseudo-labels) or reweight (1 / class share)")
    ds.add_argument("--no-amp", action="store_true", help="disable bfloat16 autocast on CUDA")
    ds.add_argument("--compile", action="store_true",
                    help="torch.compile the teacher's and student's forwards of the student step "
                         "(falls back to eager with a warning where it cannot compile)")
    ds.add_argument("--log-every", type=int, default=d["log_every"],
                    help="record the loss terms every N student steps (0: per epoch only; accuracy "
                         "is measured per epoch either way)")
    ds.add_argument("--name", help="run name, a label unique in the store (default: none, the run id)")
    ds.add_argument("--dry-run", action="store_true",
                    help="validate the run, print its resolved config (preset applied) and exit")
    ds.add_argument("--detach", action="store_true",
                    help="hand the run to a background worker, print its run id, return at once "
                         "(its progress: `kdci runs show ID`, the run's worker.log)")
    ds.add_argument("--max-concurrent", type=int, metavar="N",
                    help="local backend: runs at once (default: $KDCI_MAX_CONCURRENT, else cores/2)")
    add_backend_arguments(ds)
    ds.set_defaults(func=cmd_distill)
