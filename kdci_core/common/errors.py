"""One exception type for every rejection of user input.

The command line turns it into exit status 2 with the message on stderr; the dashboard shows
it with ``st.error``. The message names the file or field, what was expected and what was found.
"""

import numbers
import re

#: the house style of a rejection, "FIELD: expected WHAT, found WHAT" (most messages follow it)
_SHAPE = re.compile(r"(?s)(?P<field>[^:\n]+): expected (?P<expected>.+?), found (?P<found>.+)")


class InputError(ValueError):
    """Rejected user input (file, field, argument). Never carries a traceback to the user.

    It carries ``field`` (the flag, parameter or file at fault), ``expected`` and ``found``, so a
    page can name its own widget instead of parsing the message: built from them
    (``InputError(field="--k", expected="an integer", found="'abc'")``) or from a message in the
    house style, which is split into them (a free-form message keeps ``field`` from its
    "FIELD: ..." start when it has one, and ``expected``/``found`` None)."""

    def __init__(self, message: str | None = None, *, field: str | None = None,
                 expected: str | None = None, found: str | None = None):
        if message is None:
            if field is None:
                raise TypeError("InputError needs a message or a field")
            message = f"{field}: expected {expected}, found {found}" if expected is not None else field
        super().__init__(message)
        self.field, self.expected, self.found = field, expected, found
        shaped = _SHAPE.fullmatch(str(message)) if field is None else None
        if shaped:
            self.field, self.expected, self.found = (shaped["field"].strip(), shaped["expected"].strip(),
                                                     shaped["found"].strip())
        elif field is None and ": " in str(message):
            self.field = str(message).split(": ", 1)[0].strip()

    @property
    def detail(self) -> str:
        """The message without its leading ``field:`` (what a page shows after its own label)."""
        text = str(self)
        prefix = f"{self.field}: " if self.field else ""
        return text[len(prefix):] if prefix and text.startswith(prefix) else text

    def __reduce__(self):  # survives pickling (Ray, multiprocessing) with its fields
        return _rebuild, (type(self), str(self), self.field, self.expected, self.found)


def _rebuild(cls, message, field, expected, found):
    exc = cls(message)
    exc.field, exc.expected, exc.found = field, expected, found
    return exc


class StorageError(InputError):
    """A file of the run store could not be written (disk full, read-only, no permission): shown
    like bad input, one line naming the file and the cause, since the fix is the user's."""


def check_range(name: str, value, *, low=None, high=None, integer: bool = False):
    """Return ``value`` if it lies in [low, high], else raise an InputError naming the field."""
    if integer and (isinstance(value, bool) or not float(value).is_integer()):
        raise InputError(field=name, expected="an integer", found=repr(value))
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(field=name, expected="a number", found=repr(value)) from None
    if v != v or v in (float("inf"), float("-inf")):
        raise InputError(field=name, expected="a finite number", found=repr(value))
    if (low is not None and v < low) or (high is not None and v > high):
        bounds = f"between {low} and {high}" if low is not None and high is not None else (
            f">= {low}" if low is not None else f"<= {high}")
        raise InputError(field=name, expected=f"a value {bounds}", found=repr(value))
    return int(v) if integer else value


def as_int(name: str, value) -> int:
    """Accept ints (and integral floats / numpy ints); reject bools, strings, fractions."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, numbers.Real)):
        raise InputError(field=name, expected="an integer", found=repr(value))
    if isinstance(value, numbers.Integral):
        return int(value)
    if not float(value).is_integer():
        raise InputError(field=name, expected="an integer", found=repr(value))
    return int(value)
