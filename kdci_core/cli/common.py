"""What the subcommands share: JSON output, ``--param KEY=VALUE``, the run options of ``distill``
and ``diagnose``, backend options, and the reconciled run store. Subcommand modules import
this module and the engine, never the root parser."""

from __future__ import annotations

import argparse
import json
import sys

from ..common.atomic_files import write_text
from ..common.errors import InputError


def write_json(path: str | None, obj: dict) -> None:
    """``--json OUT``: the machine-readable result (nothing when OUT is not given; ``-``: the
    process's standard output, which ``main`` keeps free of anything else)."""
    if not path:
        return
    text = json.dumps(obj, indent=2, default=lambda o: getattr(o, "tolist", str)(o))
    if path == "-":
        sys.__stdout__.write(text + "\n")
        sys.__stdout__.flush()
        return
    write_text(path, text)  # replaced in one step: a kill leaves the previous file


def method_params(pairs: list[str], method: str) -> dict:
    """``--param KEY=VALUE`` pairs, each VALUE read by the parameter's declared type
    (``distill.params``: the parser of the Runs page's table and of a stored config too)."""
    from ..distill.params import typed_value
    from ..methods import METHODS

    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise InputError(f"--param: expected KEY=VALUE, found {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = typed_value(METHODS.get(method), key.strip(), value)
    return out


def k_value(text: str):
    """``--k``: a positive integer or ``auto``."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', found {text!r}") from None


def config_from_args(args):
    """The DistillConfig of the options shared by ``distill`` and ``diagnose`` (missing: default)."""
    from ..distill import DistillConfig

    d = DistillConfig()
    get = lambda name: getattr(args, name, getattr(d, name, None))  # noqa: E731
    from ..runs.configs import canonical_path  # stdlib only: one folder is one value in every config

    return DistillConfig(
        teacher=canonical_path(args.teacher), teacher_arch=args.teacher_arch, student=args.student,
        dataset=args.dataset, data_root=canonical_path(args.data_root), method=args.method,
        image_size=get("image_size"), in_channels=get("in_channels"), mean=get("mean"), std=get("std"),
        kdci=getattr(args, "kdci", "off") == "on", k=args.k, ablation=get("ablation"),
        dictionary_source=canonical_path(get("dictionary_source")),
        dictionary_source_arch=get("dictionary_source_arch"), wild_data=canonical_path(args.wild_data),
        preset=args.preset, epochs=get("epochs"),
        steps_per_epoch=get("steps_per_epoch"), batch_size=get("batch_size"), lr=get("lr"),
        weight_decay=get("weight_decay"), kdci_weight_decay=get("kdci_weight_decay"),
        augment=get("augment"), tau=get("tau"), attn_dim=get("attn_dim"), fusion=get("fusion"),
        attn_input=get("attn_input"), attn_init_gain=get("attn_init_gain"), correction=get("correction"),
        pca_dim=args.pca_dim, seed=args.seed, device=args.device,
        amp=not getattr(args, "no_amp", False), compile=bool(getattr(args, "compile", False)),
        log_every=get("log_every"),
        method_params=method_params(args.param, args.method))


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Teacher, student, data, method and seed options: the same for ``distill`` and ``diagnose``."""
    from ..common.device import DEVICE_CHOICES
    from ..distill.presets import PRESETS
    from ..methods import METHODS

    p.add_argument("--teacher", required=True, help="a teacher file, or 'builtin' (digits)")
    p.add_argument("--teacher-arch")
    p.add_argument("--student", help="student architecture (default: the preset's: quick "
                                     "lenet5_half, paper the Table 1 student of the teacher)")
    p.add_argument("--preset", default="quick", choices=PRESETS,
                   help="quick: CPU-sized defaults; paper: the reference scripts' CIFAR settings "
                        "(explicit flags override it)")
    p.add_argument("--dataset", required=True, help="the dataset whose TEST split is the reference")
    p.add_argument("--data-root")
    add_input_arguments(p)
    p.add_argument("--method", required=True, choices=METHODS.names())
    p.add_argument("--k", type=k_value, help="dictionary size: an integer, or 'auto' (the K curve's "
                                              "recommended K on the run's first dictionary data); "
                                              "default: the method's (KDCI section 4.3)")
    p.add_argument("--pca-dim", type=int)
    p.add_argument("--wild-data", help="unlabeled pool: a folder, dataset:NAME, or default photos")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="method hyperparameter override, e.g. --param g_steps=200 (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--json")
    p.add_argument("--quiet", action="store_true")


def add_input_arguments(p: argparse.ArgumentParser) -> None:
    """The teacher's input spec (``teachers.input_spec``): each flag left out is resolved from
    the teacher (a sidecar JSON beside its file, its metadata, its ONNX graph, timm's config),
    else the dataset's own."""
    p.add_argument("--image-size", type=int, metavar="PX",
                   help="square input size the teacher expects (default: the teacher's, else the "
                        "dataset's native size); the data, generators and wild pools follow it")
    p.add_argument("--in-channels", type=int, choices=(1, 3),
                   help="input channels (default: the teacher's, else the dataset's)")
    p.add_argument("--mean", type=float, nargs="+", metavar="M",
                   help="per-channel normalisation mean, 1 value or one per channel (default: the "
                        "teacher's, else the dataset's statistics)")
    p.add_argument("--std", type=float, nargs="+", metavar="S",
                   help="per-channel normalisation std, as --mean")


def add_backend_arguments(p: argparse.ArgumentParser, *, default: str | None = "local") -> None:
    p.add_argument("--backend", default=default, choices=("local", "ray"),
                   help="where workers run" + ("" if default else " (default: the run's own)"))
    p.add_argument("--ray-address", help="Ray cluster address (default: $RAY_ADDRESS, else the Ray "
                                         "head on this machine, started with `ray start --head` if none runs)")


def reconciled_store():
    """The run store at ``$KDCI_HOME``, with dead workers' runs marked failed first."""
    from ..runs.monitor import reconcile
    from ..runs.store import RunStore

    store = RunStore()
    reconcile(store)
    return store
