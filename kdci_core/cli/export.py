"""``kdci export RUN_ID --format {safetensors,torchscript,onnx} --out FILE``: a finished run's
raw student as deployed, and a JSON sidecar beside it (FILE.json: architecture, classes, input
size, normalisation, accuracy, teacher hash)."""

from __future__ import annotations

from .common import write_json


def cmd_export(args) -> int:
    from ..runs.export import export_student, load_sidecar
    from ..runs.store import RunStore

    path, sidecar = export_student(RunStore(), args.run_id, args.format, args.out)
    meta = load_sidecar(path)
    print(f"{args.run_id}: {meta['architecture']} student ({meta['student_accuracy']:.2f}% on "
          f"{meta['dataset']}) -> {path} ({args.format}), sidecar {sidecar}")
    write_json(args.json, meta)
    return 0


def add_parser(sub) -> None:
    from ..models.export import FORMATS

    p = sub.add_parser("export", help="export a finished run's student (safetensors, TorchScript, ONNX)")
    p.add_argument("run_id")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, help="the file to write; its sidecar is FILE.json")
    p.add_argument("--json")
    p.set_defaults(func=cmd_export)
