"""One exception type for every rejection of user input.

The command line turns it into exit status 2 with the message on stderr; the dashboard shows
it with ``st.error``. The message names the file or field, what was expected and what was found.
"""

import numbers


class InputError(ValueError):
    """Rejected user input (file, field, argument). Never carries a traceback to the user."""


class StorageError(InputError):
    """A file of the run store could not be written (disk full, read-only, no permission): shown
    like bad input, one line naming the file and the cause, since the fix is the user's."""


def check_range(name: str, value, *, low=None, high=None, integer: bool = False):
    """Return ``value`` if it lies in [low, high], else raise an InputError naming the field."""
    if integer and (isinstance(value, bool) or not float(value).is_integer()):
        raise InputError(f"{name}: expected an integer, found {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a number, found {value!r}") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise InputError(f"{name}: expected a finite number, found {value!r}")
    if (low is not None and v < low) or (high is not None and v > high):
        bounds = f"between {low} and {high}" if low is not None and high is not None else (
            f">= {low}" if low is not None else f"<= {high}")
        raise InputError(f"{name}: expected a value {bounds}, found {value!r}")
    return int(v) if integer else value


def as_int(name: str, value) -> int:
    """Accept ints (and integral floats / numpy ints); reject bools, strings, fractions."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, numbers.Real)):
        raise InputError(f"{name}: expected an integer, found {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    if not float(value).is_integer():
        raise InputError(f"{name}: expected an integer, found {value!r}")
    return int(value)
