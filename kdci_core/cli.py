"""Command line: ``python -m kdci_core {teacher train|teacher inspect|distill} ...``.

Exit status: 0 success, 2 rejected input (one clear line on stderr, no traceback), 1 internal
failure. ``--json OUT`` writes the machine-readable result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import InputError



def _write_json(path: str | None, obj: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(obj, indent=2, default=lambda o: getattr(o, "tolist", str)(o)))


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _method_params(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise InputError(f"--param: expected KEY=VALUE, found {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = _parse_value(value)
    return out


def cmd_teacher_train(args) -> int:
    from .device import resolve_device
    from .progress import TqdmProgress
    from .teachers import train_teacher

    progress = TqdmProgress(enabled=not args.quiet)
    summary = train_teacher(args.dataset, args.arch, epochs=args.epochs, out=args.out,
                            data_root=args.data_root, seed=args.seed, lr=args.lr,
                            batch_size=args.batch_size, device=resolve_device(args.device),
                            progress=progress)
    progress.close()
    print(f"trained {args.arch} on {args.dataset}: test accuracy {summary['test_accuracy']:.2f}% "
          f"({summary['parameters']:,} parameters) -> {args.out}")
    _write_json(args.json, summary)
    return 0


def cmd_teacher_inspect(args) -> int:
    from .data import load_dataset
    from .device import resolve_device
    from .teachers import load_teacher
    from .training import evaluate

    device = resolve_device(args.device)
    data = load_dataset(args.dataset, args.data_root) if args.dataset else None
    if data is not None and data.info.num_classes != args.num_classes:
        raise InputError(f"--num-classes {args.num_classes}: dataset {args.dataset} has "
                         f"{data.info.num_classes} classes")
    bundle = load_teacher(args.file, args.arch, num_classes=args.num_classes,
                          in_channels=data.info.in_channels if data else None, device=device)
    report = {"file": args.file, "valid": True, **bundle.describe(), "metadata": bundle.metadata}
    print(f"{args.file}: valid {args.arch} checkpoint ({bundle.checkpoint_format}), "
          f"{bundle.num_classes} classes, {bundle.in_channels} input channel(s), "
          f"{bundle.parameter_count:,} parameters")
    if data is not None:
        ev = evaluate(bundle.model, data.test, num_classes=data.info.num_classes, device=device)
        report.update(dataset=args.dataset, test_accuracy=ev.accuracy, per_class_accuracy=ev.per_class)
        print(f"test accuracy on {args.dataset}: {ev.accuracy:.2f}%")
        for name, acc in zip(data.info.class_names, ev.per_class):
            print(f"  {name:>14}: {acc:6.2f}%")
    _write_json(args.json, report)
    return 0


def config_from_args(args):
    """The DistillConfig of the options shared by ``distill`` and ``diagnose`` (missing: default)."""
    from .config import DistillConfig

    d = DistillConfig()
    get = lambda name: getattr(args, name, getattr(d, name, None))  # noqa: E731
    return DistillConfig(
        teacher=args.teacher, teacher_arch=args.teacher_arch, student=args.student,
        dataset=args.dataset, data_root=args.data_root, method=args.method,
        kdci=getattr(args, "kdci", "off") == "on", k=args.k, ablation=get("ablation"),
        dictionary_source=get("dictionary_source"), dictionary_source_arch=get("dictionary_source_arch"),
        wild_data=args.wild_data, epochs=get("epochs"), steps_per_epoch=get("steps_per_epoch"),
        batch_size=get("batch_size"), lr=get("lr"), tau=get("tau"), attn_dim=get("attn_dim"),
        fusion=get("fusion"), pca_dim=args.pca_dim, seed=args.seed, device=args.device,
        amp=not getattr(args, "no_amp", False), method_params=_method_params(args.param))


def add_run_arguments(p: argparse.ArgumentParser, *, student_required: bool = True) -> None:
    """Teacher, student, data, method and seed options: the same for ``distill`` and ``diagnose``."""
    from .config import DistillConfig
    from .device import DEVICE_CHOICES
    from .methods import METHODS

    p.add_argument("--teacher", required=True, help="a teacher file, or 'builtin' (digits)")
    p.add_argument("--teacher-arch")
    p.add_argument("--student", required=student_required, default=DistillConfig().student)
    p.add_argument("--dataset", required=True, help="the dataset whose TEST split is the reference")
    p.add_argument("--data-root")
    p.add_argument("--method", required=True, choices=METHODS.names())
    p.add_argument("--k", type=int, help="dictionary size (default: the method's, KDCI.md)")
    p.add_argument("--pca-dim", type=int)
    p.add_argument("--wild-data", help="unlabeled pool: a folder, dataset:NAME, or default photos")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="method hyperparameter override, e.g. --param g_steps=200 (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--json")
    p.add_argument("--quiet", action="store_true")


def cmd_distill(args) -> int:
    from .distill import distill

    if args.detach:
        from .workers import get_backend, launch

        cfg = config_from_args(args)
        backend = get_backend(args.backend, ray_address=args.ray_address,
                              max_concurrent=args.max_concurrent)
        run_id = launch([cfg], backend, names=[args.name])[0]
        print(run_id)
        _write_json(args.json, {"run_id": run_id, "status": "queued", "backend": args.backend})
        return 0
    from .progress import TqdmProgress

    cfg = config_from_args(args)
    progress = TqdmProgress(enabled=not args.quiet)

    def on_epoch(rec):
        if not args.quiet:
            print(f"epoch {rec['epoch']:>3}  step {rec['step']:>6}  loss {rec['loss']:.4f}  "
                  f"student {rec['student_accuracy']:.2f}%", file=sys.stderr)

    result = distill(cfg, progress=progress, on_epoch=on_epoch, run_name=args.name)
    progress.close()
    print(f"run {result['run_id']}: {cfg.method} kdci={args.kdci} teacher {result['teacher_accuracy']:.2f}% "
          f"student {result['student_accuracy']:.2f}% ({result['wall_time_s']:.1f} s, "
          f"peak {result['peak_memory_mb']:.0f} MB, {result['device']})")
    _write_json(args.json, result)
    return 0


def methods_table(markdown: bool = True) -> str:
    """Every method's kind, K, KD temperature and hyperparameter defaults with their sources."""
    from .methods import METHODS

    lines = ["| method | kind | K default | KD temperature | parameter | default | source |",
             "|---|---|---|---|---|---|---|"] if markdown else []
    for name in METHODS.names():
        m = METHODS.get(name)
        for i, (key, val) in enumerate(m.defaults.items()):
            head = (name, m.kind, str(m.default_k), f"{m.default_tau:g}") if i == 0 else ("",) * 4
            if markdown:
                cells = [f"`{head[0]}`" if head[0] else "", *head[1:], f"`{key}`", str(val),
                         m.sources.get(key, "")]
                lines.append("| " + " | ".join(cells) + " |")
            else:
                lines.append(f"{head[0]:<9} {head[1]:<10} {head[2]:>3} {head[3]:>4}  {key:<14} "
                             f"{val!s:<8} {m.sources.get(key, '')}")
    return "\n".join(lines)


def cmd_methods(args) -> int:
    print(methods_table(markdown=args.markdown))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .config import ABLATION_CHOICES, FUSION_CHOICES, DistillConfig
    from .device import DEVICE_CHOICES

    d = DistillConfig()
    p = argparse.ArgumentParser(prog="python -m kdci_core",
                                description="KDCI Studio engine: data-free distillation with causal intervention.")
    sub = p.add_subparsers(dest="command", required=True)

    teacher = sub.add_parser("teacher", help="train or inspect a teacher").add_subparsers(
        dest="teacher_command", required=True)
    tr = teacher.add_parser("train", help="train a teacher on a labelled dataset")
    tr.add_argument("--dataset", required=True)
    tr.add_argument("--data-root")
    tr.add_argument("--arch", required=True)
    tr.add_argument("--epochs", type=int, required=True)
    tr.add_argument("--out", required=True, help=".safetensors (with metadata), .pt or .pth")
    tr.add_argument("--lr", type=float, default=0.05)
    tr.add_argument("--batch-size", type=int, default=128)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    tr.add_argument("--json")
    tr.add_argument("--quiet", action="store_true")
    tr.set_defaults(func=cmd_teacher_train)

    ins = teacher.add_parser("inspect", help="load a teacher file safely, validate, score it")
    ins.add_argument("file")
    ins.add_argument("--arch", required=True)
    ins.add_argument("--num-classes", type=int, required=True)
    ins.add_argument("--dataset")
    ins.add_argument("--data-root")
    ins.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    ins.add_argument("--json")
    ins.set_defaults(func=cmd_teacher_inspect)

    me = sub.add_parser("methods", help="list the DFKD methods and their hyperparameter defaults")
    me.add_argument("--markdown", action="store_true", help="as the table in docs/METHODS.md")
    me.set_defaults(func=cmd_methods)

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
    from .cli_runs import add_backend_arguments, add_runs_parsers
    add_backend_arguments(ds)
    ds.set_defaults(func=cmd_distill)

    from .cli_diagnose import add_diagnose_parser
    add_diagnose_parser(sub)
    add_runs_parsers(sub)
    from .cli_report import add_report_parser
    add_report_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
