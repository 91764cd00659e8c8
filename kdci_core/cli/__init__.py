"""Command line: ``kdci ...`` / ``python -m kdci_core ...``, one module per noun.

``teacher`` (train, inspect), ``methods``, ``distill``, ``diagnose``, ``runs`` (list, show,
cancel, resume) and the internal ``worker``, ``report``. Each subcommand module adds its own
parser and imports the engine; none imports this root.

Exit status: 0 success, 2 rejected input (one clear line on stderr, no traceback), 1 internal
failure. ``--json OUT`` writes the machine-readable result.
"""

from __future__ import annotations

import argparse
import sys

from ..common.errors import InputError
from . import diagnose, distill, methods, report, runs, teacher

#: the subcommand modules, in the order ``--help`` lists them
COMMANDS = (teacher, methods, distill, diagnose, runs, report)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kdci", description="KDCI Studio engine: data-free "
                                "distillation with causal intervention (also: python -m kdci_core).")
    sub = p.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.add_parser(sub)
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
