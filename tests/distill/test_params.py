"""A method's parameters read by their declared type (the default's), wherever they come from:
``--param`` text, the Runs page's table, a stored config. A value of the wrong kind is one
InputError naming the parameter, the type, its range and the value, never a TypeError deeper in."""

from __future__ import annotations

import pytest

from kdci_core.distill import DistillConfig
from kdci_core.errors import InputError
from kdci_core.methods import METHODS

#: values that are no count, from text and from JSON (a stored config, the API)
BAD_COUNTS = ["abc", "null", "[1]", "{}", "nan", "inf", "1e400", "1.5", "true", "",
              None, [1], {}, float("nan"), float("inf"), 1.5, True]


@pytest.mark.parametrize("value", BAD_COUNTS, ids=repr)
def test_a_count_that_is_not_an_integer_is_one_input_error(value):
    with pytest.raises(InputError) as err:
        DistillConfig(method="deepinv", method_params={"g_steps": value}).resolve()
    msg = str(err.value)
    assert msg.startswith("deepinv.g_steps: expected an integer between 1 and 10000000, found ")
    assert "\n" not in msg


@pytest.mark.parametrize("value", ["nan", "-inf", "1e400", "x", None, [0.1], True, float("nan")], ids=repr)
def test_a_rate_that_is_not_a_finite_number_is_one_input_error(value):
    expected = r"^deepinv\.lr_g: expected a finite number between 1e-08 and 10\.0, found "
    with pytest.raises(InputError, match=expected):
        DistillConfig(method="deepinv", method_params={"lr_g": value}).resolve()


def test_negative_and_out_of_range_counts_name_the_range():
    with pytest.raises(InputError, match=r"synth_batch: expected a value between 2 and 1000000, found -3"):
        DistillConfig(method="deepinv", method_params={"synth_batch": "-3"}).resolve()


@pytest.mark.parametrize("method, key, text, value", [
    ("deepinv", "g_steps", "200", 200), ("deepinv", "g_steps", " 2e2 ", 200),
    ("deepinv", "g_steps", "200.0", 200),
    ("deepinv", "lr_g", "3", 3.0), ("deepinv", "lr_g", "1e-3", 0.001),
    ("dfnd", "balanced", "true", True), ("dfnd", "balanced", "Off", False), ("dfnd", "balanced", "1", True),
    ("fast", "meta", "reptile", "reptile"), ("fast", "meta", '"reptile"', "reptile"),
    ("fast", "g_steps", "5", 5),
])
def test_text_is_read_as_the_declared_type(method, key, text, value):
    cfg = DistillConfig(method=method, method_params={key: text}).resolve()
    assert cfg.method_params[key] == value and type(cfg.method_params[key]) is type(value)
    again = DistillConfig.from_dict(cfg.to_dict()).resolve()  # stored typed, read back the same
    assert again.method_params == cfg.method_params


def test_bools_choices_and_unknown_keys():
    with pytest.raises(InputError, match=r"^dfnd\.balanced: expected true or false, found 'maybe'$"):
        DistillConfig(method="dfnd", method_params={"balanced": "maybe"}).resolve()
    with pytest.raises(InputError, match=r"^dfnd\.balanced: expected true or false, found 1$"):
        DistillConfig(method="dfnd", method_params={"balanced": 1}).resolve()
    with pytest.raises(InputError, match=r"^fast\.g_steps: expected one of 2, 5, 10, found 'x'$"):
        DistillConfig(method="fast", method_params={"g_steps": "x"}).resolve()
    with pytest.raises(InputError, match=r"^fast\.meta: expected one of reptile, maml, found 'MAML'$"):
        DistillConfig(method="fast", method_params={"meta": "MAML"}).resolve()
    with pytest.raises(InputError, match="unknown bogus; expected some of"):
        DistillConfig(method="deepinv", method_params={"bogus": "1"}).resolve()
    with pytest.raises(InputError, match="method_params: expected a mapping"):
        DistillConfig(method="deepinv", method_params=[("g_steps", 3)]).resolve()


def test_every_default_has_a_type_the_rule_reads():
    """The rule (distill/params.py) reads bool, int, float and str; every declared default is one,
    and its own text form reads back as itself."""
    for name in METHODS.names():
        cls = METHODS.get(name)
        for key, default in cls.defaults.items():
            assert type(default) in (bool, int, float, str), f"{name}.{key}"
            text = str(default).lower() if isinstance(default, bool) else str(default)
            cfg = DistillConfig(method=name, kdci=False, method_params={key: text}).resolve()
            assert cfg.method_params[key] == default and type(cfg.method_params[key]) is type(default)
