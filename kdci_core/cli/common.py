"""What the subcommands share: the help formatter, JSON output, ``--param KEY=VALUE``, the run
options of ``distill`` and ``diagnose``, backend options, and the reconciled run store. Subcommand modules import
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


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every command's help: an option with a value of its own shows it, ``(default: X)``; one
    whose default is worked out later (None: the preset's, the teacher's, the dataset's) says so
    in its own words, as do flags (off unless given). ``tests/cli/test_help.py`` walks every
    parser and fails on an option without a help text or without its default said."""

    def _get_help_string(self, action):
        text, default = action.help or "", action.default
        said = "default:" in text.lower() or "(default" in text.lower()
        if said or action.required or default is None or default is False or default == [] \
                or default is argparse.SUPPRESS:
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse's parser with :class:`HelpFormatter`; its subparsers are of this class too."""

    def __init__(self, *args, formatter_class=HelpFormatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)


def param_pairs(pairs: list[str] | None) -> dict:
    """``--param KEY=VALUE`` pairs as ``{KEY: VALUE text}`` (typed by :func:`method_params`)."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise InputError(f"--param: expected KEY=VALUE, found {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value
    return out


def method_params(pairs: dict, method: str) -> dict:
    """The ``--param`` values, each read by the parameter's declared type (``distill.params``:
    the parser of the Runs page's table and of a stored config too)."""
    from ..distill.params import typed_value
    from ..methods import METHODS

    return {key: typed_value(METHODS.get(method), key, value) for key, value in pairs.items()}


def k_value(text: str):
    """``--k``: a positive integer or ``auto``."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', found {text!r}") from None


def config_fields(args, defaults: dict) -> dict:
    """The DistillConfig fields of the options shared by ``distill`` and ``diagnose`` as given
    (missing: ``defaults``, DistillConfig's own), paths resolved, ``method_params`` as text.
    Reads nothing of the engine: ``admit.py`` keys its cache by it without importing torch."""
    from ..runs.configs import canonical_path  # stdlib only: one folder is one value in every config

    get = lambda name: getattr(args, name, defaults.get(name))  # noqa: E731
    paths = ("teacher", "data_root", "dictionary_source", "wild_data")
    out = {name: get(name) for name in defaults if name not in ("kdci", "amp", "compile", "method_params")}
    out.update({name: canonical_path(out[name]) for name in paths})
    out.update(kdci=getattr(args, "kdci", "off") == "on", amp=not getattr(args, "no_amp", False),
               compile=bool(getattr(args, "compile", False)), method_params=param_pairs(args.param))
    return out


def config_from_args(args):
    """The DistillConfig of the options shared by ``distill`` and ``diagnose`` (missing: default)."""
    from ..distill import DistillConfig

    fields = config_fields(args, DistillConfig().to_dict())
    fields["method_params"] = method_params(fields["method_params"], args.method)
    return DistillConfig(**fields)


def add_run_arguments(p: argparse.ArgumentParser, choices: dict) -> None:
    """Teacher, student, data, method and seed options: the same for ``distill`` and ``diagnose``;
    ``choices``: the engine's (``facts.py``: read from the cache, no torch once it is written)."""
    p.add_argument("--teacher", required=True, help="a teacher file (.safetensors, .pt/.pth state "
                   "dict, .onnx graph), or 'builtin' (the embedded digits teacher)")
    p.add_argument("--teacher-arch", help="the teacher file's architecture: a zoo name, tv:NAME or "
                   "timm:NAME (default: none; required with a .safetensors/.pt/.pth file, builtin "
                   "and .onnx need none)")
    p.add_argument("--student", help="student architecture (default: the preset's: quick "
                                     "lenet5_half, paper the Table 1 student of the teacher)")
    p.add_argument("--preset", default="quick", choices=choices["preset"],
                   help="quick: CPU-sized defaults; paper: the reference scripts' CIFAR settings "
                        "(explicit flags override it)")
    p.add_argument("--dataset", required=True, metavar="NAME",
                   help=f"the dataset whose TEST split is the reference: {', '.join(choices['dataset'])}")
    p.add_argument("--data-root", metavar="DIR", help="the dataset's folder (default: none: digits "
                   "is embedded; fashion-mnist falls back to /usr/share/datasets/fashion-mnist)")
    add_input_arguments(p)
    p.add_argument("--method", required=True, choices=choices["method"], help="the DFKD method "
                   "that makes the substitution data (`kdci methods` lists them)")
    p.add_argument("--k", type=k_value, help="dictionary size: an integer, or 'auto' (the K curve's "
                                              "recommended K on the run's first dictionary data); "
                                              "default: the method's (KDCI section 4.3)")
    p.add_argument("--pca-dim", type=int, metavar="N", help="PCA components before k-means (default: "
                   "enough for 95%% of the variance)")
    p.add_argument("--wild-data", help="sampling methods' unlabeled pool: a folder, dataset:NAME, or "
                   "'default' (default: scikit-learn's sample photographs)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="method hyperparameter override, e.g. --param g_steps=200 (repeatable; "
                        "default: the method's, see `kdci methods`)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the run (runs pair by it)")
    p.add_argument("--device", default="auto", choices=choices["device"],
                   help="auto: CUDA when available, else the CPU")
    add_output_arguments(p, quiet="no progress bars or per-epoch lines")


def add_output_arguments(p: argparse.ArgumentParser, *, quiet: str | None = None) -> None:
    """``--json OUT`` (and ``--quiet`` with its help text, for commands with progress)."""
    p.add_argument("--json", metavar="OUT", help="also write the result as JSON to OUT ('-': "
                   "stdout, the rest of the output going to stderr; default: no JSON)")
    if quiet:
        p.add_argument("--quiet", action="store_true", help=quiet)


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
                   help="per-channel normalisation std, as --mean (default: the teacher's, else "
                        "the dataset's statistics)")


def add_backend_arguments(p: argparse.ArgumentParser, *, default: str | None = "local") -> None:
    p.add_argument("--backend", default=default, choices=("local", "ray"),
                   help="where workers run: local processes or a Ray cluster"
                        + ("" if default else " (default: the run's own)"))
    p.add_argument("--ray-address", help="Ray cluster address (default: $RAY_ADDRESS, else the Ray "
                                         "head on this machine, started with `ray start --head` if none runs)")


def reconciled_store():
    """The run store at ``$KDCI_HOME``, with dead workers' runs marked failed first."""
    from ..runs.monitor import reconcile
    from ..runs.store import RunStore

    store = RunStore()
    reconcile(store)
    return store
