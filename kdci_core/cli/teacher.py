"""``kdci teacher train`` and ``kdci teacher inspect``: a teacher trained on a labelled dataset,
or a checkpoint loaded safely, validated and scored (the Teacher page's ``TeacherReport``)."""

from __future__ import annotations

import argparse

from ..common.errors import InputError
from .common import write_json


def cmd_train(args) -> int:
    from ..common.device import resolve_device
    from ..common.progress import TqdmProgress
    from ..teachers import train_teacher

    progress = TqdmProgress(enabled=not args.quiet)
    summary = train_teacher(args.dataset, args.arch, epochs=args.epochs, out=args.out,
                            data_root=args.data_root, seed=args.seed, lr=args.lr,
                            batch_size=args.batch_size, device=resolve_device(args.device),
                            progress=progress)
    progress.close()
    print(f"trained {args.arch} on {args.dataset}: test accuracy {summary['test_accuracy']:.2f}% "
          f"({summary['parameters']:,} parameters) -> {args.out}")
    write_json(args.json, summary)
    return 0


def cmd_inspect(args) -> int:
    from ..common.device import resolve_device
    from ..data import load_dataset
    from ..teachers import load_teacher, report_for

    device = resolve_device(args.device)
    data = load_dataset(args.dataset, args.data_root) if args.dataset else None
    if data is not None and data.info.num_classes != args.num_classes:
        raise InputError(f"--num-classes {args.num_classes}: dataset {args.dataset} has "
                         f"{data.info.num_classes} classes")
    bundle = load_teacher(args.file, args.arch, num_classes=args.num_classes,
                          in_channels=data.info.in_channels if data else None, device=device)
    out = {"file": args.file, "valid": True, **bundle.describe(), "metadata": bundle.metadata}
    print(f"{args.file}: valid {args.arch} checkpoint ({bundle.checkpoint_format}), "
          f"{bundle.num_classes} classes, {bundle.in_channels} input channel(s), "
          f"{bundle.parameter_count:,} parameters")
    if data is not None:
        report = report_for(bundle, data, device)
        out.update(dataset=args.dataset, test_accuracy=report.accuracy, per_class_accuracy=report.per_class)
        print(f"test accuracy on {args.dataset}: {report.accuracy:.2f}%")
        for name, acc in zip(report.class_names, report.per_class):
            print(f"  {name:>14}: {acc:6.2f}%")
    write_json(args.json, out)
    return 0


def add_parser(sub) -> None:
    from ..common.device import DEVICE_CHOICES

    teacher = sub.add_parser("teacher", help="train or inspect a teacher").add_subparsers(
        dest="teacher_command", required=True)
    tr: argparse.ArgumentParser = teacher.add_parser("train", help="train a teacher on a labelled dataset")
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
    tr.set_defaults(func=cmd_train)

    ins = teacher.add_parser("inspect", help="load a teacher file safely, validate, score it")
    ins.add_argument("file", help=".safetensors or a torch.save state dict (.pt/.pth); files that "
                     "run code when loaded (TorchScript, torch.export) are refused")
    ins.add_argument("--arch", required=True)
    ins.add_argument("--num-classes", type=int, required=True)
    ins.add_argument("--dataset")
    ins.add_argument("--data-root")
    ins.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    ins.add_argument("--json")
    ins.set_defaults(func=cmd_inspect)
