"""Command line: ``kdci ...`` / ``python -m kdci_core ...``, one module per noun.

``teacher`` (train, inspect), ``methods``, ``distill``, ``diagnose``, ``runs`` (list, show,
cancel, resume) and the internal ``worker``, ``report``. Each subcommand module adds its own
parser and imports the engine; none imports this root. ``--json -`` writes the JSON to stdout
(and everything else the command prints to stderr).

Exit status: 0 success, 2 rejected input (one clear line on stderr, no traceback), 1 internal
failure, 141 (128 + SIGPIPE, as a shell's own tools) when the reader of the output went away
(``kdci runs list | head -1``): quietly, no traceback. ``--json OUT`` writes the machine-readable
result.
"""

from __future__ import annotations

import contextlib
import os
import sys

from importlib import import_module

from ..common.errors import InputError
from .common import Parser

#: the subcommands, in the order ``--help`` lists them: (module of this package, one-line help).
#: Only the module of the command given is imported, so ``kdci --help`` and ``kdci runs list``
#: do not pay for torch (what each module imports is what its command needs).
COMMANDS = {
    "teacher": ("teacher", "train or inspect a teacher"),
    "methods": ("methods", "list the DFKD methods and their defaults (quick and paper presets)"),
    "distill": ("distill", "distil a student without the original data"),
    "diagnose": ("diagnose", "substitution data of a method: FID, class proportions, dictionary"),
    "runs": ("runs", "list, show, cancel, resume, delete, tag or export runs"),
    "worker": ("runs", "(internal) run one stored run in this process"),
    "report": ("report", "compare finished runs (KDCI on vs off, paired by seed) into an HTML report"),
    "export": ("export", "export a finished run's student (safetensors, TorchScript, ONNX)"),
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser: every command named, only the one in ``argv`` (all, with None) built in full."""
    p = Parser(prog="kdci", description="KDCI Studio engine: data-free "
                                "distillation with causal intervention (also: python -m kdci_core).")
    sub = p.add_subparsers(dest="command", required=True)
    wanted = None if argv is None else next((a for a in argv if not a.startswith("-")), "")
    built = set()
    for name, (module, helptext) in COMMANDS.items():
        if wanted is None or name == wanted:
            if module not in built:
                import_module(f".{module}", __name__).add_parser(sub)
                built.add(module)
        elif wanted not in COMMANDS or COMMANDS[wanted][0] != module:
            sub.add_parser(name, help=helptext)
    return p


#: the exit status of a command whose output's reader went away (128 + SIGPIPE)
CLOSED_PIPE = 141


def _run(args) -> int:
    if getattr(args, "json", None) == "-":  # the JSON alone on stdout, the rest on stderr
        with contextlib.redirect_stdout(sys.stderr):
            return args.func(args)
    return args.func(args)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    try:
        code = _run(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # what is left in stdout's buffer goes nowhere: the interpreter's own flush at exit
        # would raise again ("Exception ignored ... BrokenPipeError") (Python's signal docs)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return CLOSED_PIPE
