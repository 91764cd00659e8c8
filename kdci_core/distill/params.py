"""A method's parameters read by their declared type, the one parser behind ``--param KEY=VALUE``,
the Runs page's parameter table and a stored config, so that ``abc``, ``null``, ``[1]``, ``{}``,
``nan`` or ``1e400`` for a count is one InputError naming the parameter, not a traceback.

The rule: a parameter's type is the type of its default (``defaults`` beside each method's code):
- int: a whole number, ``200``, ``-5``, ``2e3`` or ``200.0`` (finite and integral), not a bool;
- float: a finite number, ``0.5``, ``1e-3``, ``3`` (not ``nan``, ``inf``, nor ``1e400``, which
  overflows to inf), not a bool;
- bool: ``true``/``false``, ``yes``/``no``, ``on``/``off``, ``1``/``0`` (any case);
- str: the text itself; a JSON string (``"maml"``, as the page's table shows it) is unquoted;
- any other type: the text as JSON, which must give a value of the default's type.
Text is parsed by that rule; a value that is already typed (a stored config) must be of that type
(an int is a valid float, a bool is not a number). Ranges and choices are then the method's own
(``DFKDMethod.resolve_params``), and an unknown key is refused there with the known ones listed.
"""

from __future__ import annotations

import json
import math
import numbers

from ..common.errors import InputError
from ..methods.base import TYPE_RANGES

_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def _expected(method_cls, key: str, kind: type) -> str:
    """'an integer between 1 and 10' / 'one of reptile, maml': what a value of ``key`` must be."""
    choices = method_cls._merged("choices").get(key)
    if choices:
        return f"one of {', '.join(map(str, choices))}"
    what = {bool: "true or false", int: "an integer", float: "a finite number",
            str: "text"}.get(kind, f"JSON of type {kind.__name__}")
    if kind not in (int, float):
        return what
    low, high = method_cls._merged("ranges").get(key, TYPE_RANGES[kind])
    return f"{what} between {low} and {high}"


def _number(value, kind: type):
    """``value`` (a number) as ``kind`` (int or float), or None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return None
    if kind is float:
        return float(value)
    return int(value) if float(value).is_integer() else None


def _from_text(text: str, kind: type):
    """The value ``text`` spells as ``kind``; None when it spells none."""
    t = text.strip()
    if kind is str:
        if len(t) >= 2 and t[0] == t[-1] == '"':
            try:
                return json.loads(t)
            except json.JSONDecodeError:
                return text
        return text
    if kind is bool:
        return True if t.lower() in _TRUE else False if t.lower() in _FALSE else None
    if kind in (int, float):
        try:
            return _number(int(t), kind)
        except ValueError:
            pass
        try:
            return _number(float(t), kind)
        except ValueError:
            return None
    try:
        value = json.loads(t)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, kind) else None


def typed_value(method_cls, key: str, value):
    """``value`` of ``method_cls``'s parameter ``key`` as its declared type (text is parsed);
    an InputError naming the parameter, the type and the value when it is not one."""
    if key not in method_cls.defaults:
        return value  # resolve_params names the unknown key and lists the known ones
    kind = type(method_cls.defaults[key])
    if isinstance(value, str):
        out = _from_text(value, kind)
    elif kind is bool:
        out = value if isinstance(value, bool) else None
    elif kind in (int, float):
        out = _number(value, kind)
    else:
        out = value if isinstance(value, kind) else None
    if out is None:
        raise InputError(f"{method_cls.name}.{key}: expected {_expected(method_cls, key, kind)}, "
                         f"found {value!r}")
    return out


def typed_params(method_cls, params: dict) -> dict:
    """The overrides ``params`` with every value of its declared type, checked against the
    method's ranges and choices (``resolve_params``); returns the typed overrides alone."""
    if not isinstance(params, dict):
        raise InputError(f"method_params: expected a mapping of parameter names to values, found "
                         f"{type(params).__name__}")
    out = {str(k): typed_value(method_cls, str(k), v) for k, v in params.items()}
    resolved = method_cls.resolve_params(out)
    return {k: resolved[k] for k in out}
