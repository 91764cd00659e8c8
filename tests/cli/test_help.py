"""Every command-line option says what it is and what it defaults to (issue 22: no option in
``--help`` had a description or a default). The test walks the whole parser tree."""

from __future__ import annotations

import argparse

from kdci_core.cli import build_parser
from kdci_core.cli.common import HelpFormatter


def walk(parser: argparse.ArgumentParser, path: tuple = ("kdci",)):
    """(command path, parser) of the root parser and every subparser below it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, path + (name,))


def problems_of(path: tuple, parser: argparse.ArgumentParser) -> list[str]:
    out = []
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            out += [f"{' '.join(path)} {c.dest}: no help line" for c in action._choices_actions
                    if not (c.help or "").strip()]
            continue
        name = f"{' '.join(path)} {action.option_strings[0] if action.option_strings else action.dest}"
        if not (action.help or "").strip():
            out.append(f"{name}: no help text")
            continue
        shown = formatter._expand_help(action)  # the text --help prints (defaults substituted)
        takes_value = action.option_strings and action.nargs != 0 and not action.required
        if takes_value and "default" not in shown.lower():
            out.append(f"{name}: its default is not said ({shown!r})")
    return out


def test_every_option_of_every_command_has_a_help_text_and_its_default():
    parser = build_parser()  # None: every command built in full
    found = [(path, p) for path, p in walk(parser)]
    commands = {path[1] for path, _ in found if len(path) > 1}
    assert {"teacher", "methods", "distill", "diagnose", "runs", "worker", "report", "export"} <= commands
    assert ("kdci", "teacher", "train") in [path for path, _ in found]
    bad = [line for path, p in found for line in problems_of(path, p)]
    assert not bad, "\n".join(bad)
    for path, p in found:
        assert p.formatter_class is HelpFormatter, path  # one way for every command
        assert p.format_help()  # every help text formats (a stray % would raise here)


def test_a_default_is_shown_once_in_the_help():
    text = build_parser(["distill"])._subparsers._group_actions[0].choices["distill"].format_help()
    flat = " ".join(text.split())
    assert "(default: 0)" in flat  # --seed: argparse's own "(default: X)"
    assert "(default: quick)" in flat  # --preset
    assert "default: the preset's (quick 10, paper 200)" in flat  # --epochs: said in its own words
    assert "(default: None)" not in flat and "(default: False)" not in flat
