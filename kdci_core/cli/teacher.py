"""``kdci teacher train`` and ``kdci teacher inspect``: a teacher trained on a labelled dataset,
or a checkpoint loaded safely, validated and scored (the Teacher page's ``TeacherReport``)."""

from __future__ import annotations

import argparse
import sys

from ..common.errors import InputError
from .common import add_input_arguments, add_output_arguments, write_json


def epoch_line(rec: dict) -> str:
    """One epoch of teacher training for people (what ``teacher train`` prints on stderr)."""
    return (f"epoch {rec['epoch']:>3}/{rec['epochs']}  loss {rec['loss']:.4f}  train accuracy "
            f"{rec['accuracy']:6.2f}%  ({rec['seconds']:.1f} s)")


def cmd_train(args) -> int:
    from ..common.device import resolve_device
    from ..common.progress import TqdmProgress
    from ..teachers import train_teacher

    progress = TqdmProgress(enabled=not args.quiet)
    say = None if args.quiet else progress.write
    if say:
        say(f"loading {args.dataset}...")
    summary = train_teacher(args.dataset, args.arch, epochs=args.epochs, out=args.out,
                            data_root=args.data_root, seed=args.seed, lr=args.lr,
                            batch_size=args.batch_size, device=resolve_device(args.device),
                            progress=progress, image_size=args.image_size,
                            in_channels=args.in_channels, on_start=say,
                            on_epoch=say and (lambda rec: say(epoch_line(rec))))
    progress.close()
    print(f"trained {args.arch} on {args.dataset}: test accuracy {summary['test_accuracy']:.2f}% "
          f"({summary['parameters']:,} parameters) -> {args.out}")
    write_json(args.json, summary)
    return 0


def cmd_inspect(args) -> int:
    from ..common.device import resolve_device
    from ..teachers import is_onnx_path, load_teacher, report_for
    from ..teachers.input_spec import load_at_spec, resolve_input_spec
    from ..teachers.inspect import CHANCE_MARGIN, chance_level, near_chance

    device = resolve_device(args.device)
    if args.arch and not is_onnx_path(args.file):
        from ..models import check_arch

        check_arch(args.arch, "--arch")  # an unknown name: the close matches, before any work
    elif not is_onnx_path(args.file):  # no --arch: the one common architecture it matches
        from ..teachers.load import infer_arch

        args.arch = infer_arch(args.file)
        print(f"no --arch given: the layers of {args.file} match {args.arch!r} and no other "
              "common architecture searched; using it")
    spec = resolve_input_spec(image_size=args.image_size, in_channels=args.in_channels,
                              mean=args.mean, std=args.std, teacher=args.file, teacher_arch=args.arch,
                              dataset=args.dataset)
    data, spec = load_at_spec(args.dataset, args.data_root, spec) if args.dataset else (None, spec)
    print(f"input: {spec.describe()}")
    if data is not None and args.num_classes is not None and data.info.num_classes != args.num_classes:
        raise InputError(f"--num-classes {args.num_classes}: dataset {args.dataset} has "
                         f"{data.info.num_classes} classes")
    if is_onnx_path(args.file):
        bundle, out = _inspect_onnx(args, data, device)
    else:
        bundle = load_teacher(args.file, args.arch, num_classes=args.num_classes,
                              in_channels=data.info.in_channels if data else None, device=device,
                              image_size=spec.image_size)
        out = {"file": args.file, "valid": True, **bundle.describe(), "metadata": bundle.metadata}
        print(f"{args.file}: valid {args.arch} checkpoint ({bundle.checkpoint_format}), "
              f"{bundle.num_classes} classes, {bundle.in_channels} input channel(s), "
              f"{bundle.parameter_count:,} parameters")
    out["input_spec"] = spec.to_dict()
    if data is not None:
        report = report_for(bundle, data, device)
        out.update(dataset=args.dataset, test_accuracy=report.accuracy, per_class_accuracy=report.per_class)
        print(f"test accuracy on {args.dataset}: {report.accuracy:.2f}%")
        for name, acc in zip(report.class_names, report.per_class):
            print(f"  {name:>14}: {acc:6.2f}%")
        if near_chance(report.accuracy, report.num_classes):
            out["near_chance"] = True
            print(f"warning: {report.accuracy:.2f}% is within {CHANCE_MARGIN:g} points of chance "
                  f"({chance_level(report.num_classes):.2f}% for {report.num_classes} classes): the "
                  "teacher barely beats guessing on this data. Likely causes: the wrong dataset, the "
                  "wrong normalisation (--mean/--std), the wrong architecture or image size, or an "
                  "untrained file", file=sys.stderr)
    write_json(args.json, out)
    return 0


def _inspect_onnx(args, data, device):
    """An ONNX black box: classes and input shape from its graph, and the methods it can serve."""
    from ..methods import methods_for_teacher
    from ..teachers import load_onnx_teacher, teacher_capabilities

    info = data.info if data is not None else None
    bundle = load_onnx_teacher(args.file, device=device, num_classes=args.num_classes,
                               in_channels=info.in_channels if info else None,
                               image_size=info.image_size if info else None)
    caps = teacher_capabilities(bundle.model)
    methods = methods_for_teacher(caps)
    c, h, w = bundle.model.input_shape
    out = {"file": args.file, "valid": True, **bundle.describe(), "input_shape": [c, h, w],
           "capabilities": sorted(caps), "methods": methods, "metadata": bundle.metadata}
    print(f"{args.file}: valid ONNX graph (a black box: its outputs only), {bundle.num_classes} "
          f"classes, input {c} x {h} x {w}, {bundle.parameter_count:,} parameters; methods it can "
          f"serve: {', '.join(m for m, why in methods.items() if why is None)}")
    return bundle, out


def add_parser(sub) -> None:
    from ..common.device import DEVICE_CHOICES
    from ..data import dataset_names

    datasets = ", ".join(dataset_names())
    teacher = sub.add_parser("teacher", help="train or inspect a teacher").add_subparsers(
        dest="teacher_command", required=True)
    tr: argparse.ArgumentParser = teacher.add_parser("train", help="train a teacher on a labelled dataset")
    tr.add_argument("--dataset", required=True, metavar="NAME", help=f"the labelled dataset: {datasets}")
    tr.add_argument("--data-root", metavar="DIR", help="the dataset's folder (default: none: digits "
                    "is embedded; fashion-mnist falls back to /usr/share/datasets/fashion-mnist)")
    tr.add_argument("--arch", required=True, help="the architecture: a zoo name, tv:NAME or timm:NAME")
    tr.add_argument("--epochs", type=int, required=True, help="passes over the training split")
    tr.add_argument("--out", required=True, help=".safetensors (with metadata), .pt or .pth")
    tr.add_argument("--image-size", type=int, metavar="PX",
                    help="train at this square size (default: the dataset's); recorded in the "
                         "file's metadata (a .pt/.pth: a sidecar JSON), which runs then follow")
    tr.add_argument("--in-channels", type=int, choices=(1, 3),
                    help="train on 1 or 3 channels (default: the dataset's)")
    tr.add_argument("--lr", type=float, default=0.05, help="peak SGD learning rate (one-cycle schedule)")
    tr.add_argument("--batch-size", type=int, default=128, help="images per step")
    tr.add_argument("--seed", type=int, default=0, help="random seed (initialisation, order, augmentation)")
    tr.add_argument("--device", default="auto", choices=DEVICE_CHOICES,
                    help="auto: CUDA when available, else the CPU")
    add_output_arguments(tr, quiet="no progress bar, no per-epoch lines: only the final line")
    tr.set_defaults(func=cmd_train)

    ins = teacher.add_parser("inspect", help="load a teacher file safely, validate, score it")
    ins.add_argument("file", help=".safetensors or a torch.save state dict (.pt/.pth), or an .onnx "
                     "graph (a black box); files that run code when loaded (TorchScript, "
                     "torch.export) are refused")
    ins.add_argument("--arch", help="the checkpoint's architecture: a zoo name, tv:NAME or "
                     "timm:NAME (default: the one common architecture its layers match; an .onnx "
                     "file needs none)")
    ins.add_argument("--num-classes", type=int,
                     help="the checkpoint's class count (default: its final layer's; an .onnx "
                     "file's graph gives it)")
    ins.add_argument("--dataset", metavar="NAME", help=f"score the teacher on this dataset's test "
                     f"split: {datasets} (default: none, no score)")
    ins.add_argument("--data-root", metavar="DIR", help="the dataset's folder (default: none: digits "
                     "is embedded; fashion-mnist falls back to /usr/share/datasets/fashion-mnist)")
    add_input_arguments(ins)
    ins.add_argument("--device", default="auto", choices=DEVICE_CHOICES,
                     help="auto: CUDA when available, else the CPU")
    add_output_arguments(ins)
    ins.set_defaults(func=cmd_inspect)
