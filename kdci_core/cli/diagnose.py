"""``python -m kdci_core diagnose``: the shift of one method's substitution data, before distilling.

Prints FID (with its feature extractor), class proportions under teacher pseudo-labels next to
the test split's, imbalance figures, and the confounder dictionary; ``--json OUT`` has it all.
"""

from __future__ import annotations

import argparse
import sys

from .common import add_run_arguments, config_from_args, write_json


def _fmt_ratio(value) -> str:
    return "inf" if value is None else f"{value:.2f}"


def projection(result, method: str, progress) -> dict:
    """The teacher's logits in 2-D with the prototypes in the same plane (the Confounder
    dictionary page's view), with the projection's stages on the bar; the points for ``--json``."""
    from ..diagnostics.projections import NAMES, project

    proj = project(result.data.teacher_logits, method, extra=result.dictionary.prototypes,
                   seed=result.config.seed, progress=progress)
    progress.close()
    print(f"{NAMES[method]} of {len(proj.points)} teacher logits and {len(proj.extra)} prototypes: "
          + ("from the cache" if proj.cached else f"{proj.seconds:.1f} s"))
    return {"method": method, "points": proj.points.tolist(), "prototypes": proj.extra.tolist(),
            "labels": result.dictionary.labels.tolist(), "params": proj.params}


def cmd_diagnose(args) -> int:
    from ..common.progress import TqdmProgress
    from ..diagnostics.diagnose import diagnose

    cfg = config_from_args(args)
    progress = TqdmProgress(enabled=not args.quiet)
    result = diagnose(cfg, rounds=args.rounds, k=args.k, pca_dim=args.pca_dim,
                      fid=None if args.fid == "none" else args.fid,
                      inception_weights=args.inception_weights, with_k_curve=args.k_curve,
                      max_reference=args.max_reference, progress=progress)
    progress.close()
    out = result.to_dict()
    sub, bal = out["substitution"], out["proportions"]
    print(f"{cfg.method} on {out['dataset']}: {sub['n_images']} substitution images "
          f"({sub['rounds']} round(s), {sub['seconds']:.1f} s, {out['device']})")
    if result.fid is not None:
        print(result.fid.label())
        if result.fid_real is not None:
            print(f"  real training images, same extractor (the floor): {result.fid_real.label()}")
        if result.fid.warning:
            print(f"warning: {result.fid.warning}", file=sys.stderr)
    for name, imb in bal["imbalance"].items():
        print(f"{name:>12}: normalised entropy {imb['normalised_entropy']:.3f}, KL to uniform "
              f"{imb['kl_to_uniform']:.3f} nats, max/min {_fmt_ratio(imb['max_min_ratio'])}, "
              f"{imb['empty_classes']} empty class(es)")
    print(f"{'class':>14} {'substitution':>12} {'test split':>10}")
    for name, p, q in zip(bal["class_names"], bal["substitution"], bal["original"]):
        print(f"{name:>14} {100 * p:11.1f}% {100 * q:9.1f}%")
    d = out["dictionary"]
    print(f"dictionary: K'={d['k']} (asked {d['k_requested']}), PCA {d['pca_components']} "
          f"components, P(z) from {min(d['proportions']):.3f} to {max(d['proportions']):.3f}")
    if result.k_curve is not None:
        print(f"K curve over {result.k_curve.ks}: recommended K={result.k_curve.recommended_k} "
              f"({result.k_curve.rule})")
    if args.projection:
        out["projection"] = projection(result, args.projection, progress)
    write_json(args.json, out)
    return 0


def add_parser(sub) -> None:
    from .facts import load

    p: argparse.ArgumentParser = sub.add_parser(
        "diagnose", help="substitution data of a method: FID, class proportions, dictionary")
    add_run_arguments(p, load().choices)
    p.add_argument("--kdci", default="off", choices=("on", "off"),
                   help="KDCI during the collection loop (generation methods train a student meanwhile)")
    p.add_argument("--rounds", type=int, default=4,
                   help="synthesis rounds to collect (generation methods; sampling methods select once)")
    p.add_argument("--fid", default="auto", choices=("auto", "inception", "teacher", "none"),
                   help="feature extractor for FID: Inception when its weights are present, else the teacher")
    p.add_argument("--inception-weights", help="pytorch-fid's pt_inception-2015-12-05 weights file "
                   "(default: pytorch-fid's own file in the torch hub cache, when it is there)")
    p.add_argument("--max-reference", type=int, default=2000, help="test images in the FID reference")
    p.add_argument("--k-curve", action="store_true", help="also the K curve with a recommended K")
    p.add_argument("--projection", choices=("pca", "tsne", "umap"), help="also the teacher's "
                   "logits in 2-D with the prototypes (the dictionary page's view; in --json; "
                   "default: none)")
    p.set_defaults(func=cmd_diagnose)
