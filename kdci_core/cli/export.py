"""``kdci export RUN_ID --format {safetensors,torchscript,onnx} --out FILE``: a finished run's
raw student as deployed, and a JSON sidecar beside it (FILE.json: architecture, classes, input
size, normalisation, accuracy, teacher hash); then the file is loaded back on its own and run on
test images against the student (``--no-check`` skips it). Each step says what it is doing on
stderr (an ONNX export takes seconds to tens of seconds)."""

from __future__ import annotations

from .common import add_output_arguments, write_json


def cmd_export(args) -> int:
    import sys

    from ..runs.export import export_student, load_sidecar
    from ..runs.store import RunStore

    say = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    store = RunStore()
    say(f"export: loading {args.run_id}'s student and writing it as {args.format}...")
    path, sidecar = export_student(store, args.run_id, args.format, args.out)
    meta = load_sidecar(path)
    print(f"{args.run_id}: {meta['architecture']} student ({meta['student_accuracy']:.2f}% on "
          f"{meta['dataset']}) -> {path} ({args.format}), sidecar {sidecar}")
    if not args.no_check:
        from ..runs.export_check import check_export

        say(f"export: checking {path.name}: loading it back and running it on test images...")
        meta["check"] = check = check_export(store, args.run_id, path, args.format)
        if not check["checked"]:
            print(f"check: {path.name} {check['note']}")
        else:
            print(f"check: {check['runtime']} runs {path.name}; its predictions agree with the student's "
                  f"on {check['agreement']:.1f}% of {check['images']} test images (largest logit "
                  f"difference {check['max_abs_logit_diff']:.2g})")
    write_json(args.json, meta)
    return 0


def add_parser(sub) -> None:
    from ..models.export import FORMATS

    p = sub.add_parser("export", help="export a finished run's student (safetensors, TorchScript, ONNX)")
    p.add_argument("run_id", help="the finished run's id (or its name)")
    p.add_argument("--format", required=True, choices=FORMATS, help="safetensors (weights), "
                   "torchscript (runs on libtorch) or onnx (runs on onnxruntime)")
    p.add_argument("--out", required=True, help="the file to write; its sidecar is FILE.json")
    p.add_argument("--no-check", action="store_true", help="skip loading the file back and "
                   "comparing its predictions with the student's on test images")
    add_output_arguments(p, quiet="no step lines on stderr")
    p.set_defaults(func=cmd_export)
