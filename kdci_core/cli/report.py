"""``python -m kdci_core report``: compare finished runs (KDCI on vs off across seeds) into a
self-contained HTML report with ``.json`` and ``.md`` siblings.

Reads the run store at ``$KDCI_HOME``; an unknown or unfinished run id exits 2 with one line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..common.errors import InputError
from .common import write_json


def cmd_report(args) -> int:
    from ..common.device import resolve_device
    from ..common.progress import TqdmProgress
    from ..reports import compare_runs, export_report
    from ..runs import RunStore

    progress = TqdmProgress(enabled=not args.quiet)
    try:
        store = RunStore()
        out = Path(args.out)
        if out.suffix.lower() not in (".html", ".htm"):
            raise InputError(f"--out {args.out}: expected an .html file (the .json and .md go beside it)")
        comp = compare_runs(store, args.runs, args.by)  # rejects bad ids before anything is written
        paths = export_report(store, args.runs, out, include_students=not args.no_students, field=args.by,
                              projection=args.projection, device=resolve_device(args.device),
                              progress=progress)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        progress.close()
    for key, m in comp.gains.items():
        p = "n/a" if m.p_value is None else f"{m.p_value:.3g}"
        std = "" if m.std is None else f" ± {m.std:.2f}"
        what = "KDCI gain" if comp.field == "kdci" else f"gain over {comp.field}={comp.reference}"
        print(f"{key}: {what} {m.mean:+.2f}{std} points over {m.n} seed pair(s), paired t-test "
              f"p={p}, {m.positive}/{m.n} positive")
    for note in comp.notes:
        print(f"note: {note}", file=sys.stderr)
    print("wrote " + ", ".join(str(p) for p in paths))
    write_json(args.json, comp.to_dict())
    return 0


def add_parser(sub) -> None:
    from ..common.device import DEVICE_CHOICES

    p: argparse.ArgumentParser = sub.add_parser(
        "report", help="compare finished runs (KDCI on vs off, paired by seed) into an HTML report")
    p.add_argument("--runs", nargs="+", required=True, metavar="ID", help="finished run ids")
    p.add_argument("--out", required=True, help="the .html report; .json and .md are written beside it")
    p.add_argument("--no-students", action="store_true",
                   help="skip the student views (t-SNE, per-class deltas, corrected examples)")
    p.add_argument("--by", default="kdci", metavar="FIELD",
                   help="the config field to compare (default kdci: on vs off; e.g. correction, "
                        "ablation, k); runs pair when alike in every other field and the seed")
    p.add_argument("--projection", default="tsne", choices=("tsne", "umap", "pca"),
                   help="how the students' features are drawn in 2-D")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES,
                   help="where the student views' features are computed (auto: CUDA when available)")
    p.add_argument("--json", metavar="OUT", help="also write the comparison's JSON to OUT ('-': "
                   "stdout; default: none beyond the report's own .json)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_report)
