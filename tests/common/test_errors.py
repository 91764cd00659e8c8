"""InputError carries the field at fault, what was expected and what was found, so a page names its
own widget from them instead of parsing the message; it keeps them through pickling (Ray)."""

import pickle

import pytest

from kdci_core.common.errors import InputError, StorageError, check_range


def test_built_from_its_parts():
    exc = InputError(field="--k", expected="an integer >= 2", found="'abc'")
    assert str(exc) == "--k: expected an integer >= 2, found 'abc'"
    assert (exc.field, exc.expected, exc.found, exc.detail) == ("--k", "an integer >= 2", "'abc'",
                                                               "expected an integer >= 2, found 'abc'")


def test_a_house_style_message_is_split():
    exc = InputError("--param g_steps: expected an integer, found 'abc'")
    assert (exc.field, exc.expected, exc.found) == ("--param g_steps", "an integer", "'abc'")


def test_a_free_form_message_keeps_its_field_only():
    exc = InputError("teacher.pt: refused: a TorchScript archive runs code when loaded")
    assert (exc.field, exc.expected, exc.found) == ("teacher.pt", None, None)
    assert exc.detail == "refused: a TorchScript archive runs code when loaded"
    assert InputError("no colon here").field is None


def test_the_helpers_fill_the_parts():
    with pytest.raises(InputError) as info:
        check_range("--epochs", 0, low=1, integer=True)
    assert (info.value.field, info.value.expected, info.value.found) == ("--epochs", "a value >= 1", "0")


@pytest.mark.parametrize("cls", [InputError, StorageError])
def test_pickling_keeps_the_parts(cls):
    exc = cls(field="run.json", expected="room to write", found="a full disk")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is cls and str(back) == str(exc)
    assert (back.field, back.expected, back.found) == ("run.json", "room to write", "a full disk")
