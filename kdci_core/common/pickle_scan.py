"""A pickle read as opcodes only (``pickletools.genops``): nothing is imported, called or built.

What a pickle declares can be checked before any unpickler sees it: how many objects it would
build, which memo slots it writes (CPython's unpickler grows its memo to the largest index it
is given: one opcode asking for slot 2**32 would allocate 32 GiB), and its persistent ids (how
torch.save names each storage and its size). A stack of the values this scan tracks (numbers,
strings, global names and small tuples of them) follows ``pickletools``' own stack effects.
Every malformed or out-of-bounds pickle raises ``ValueError``; readers turn it into their
InputError.
"""

from __future__ import annotations

import pickletools
from dataclasses import dataclass, field

_MARK, _OTHER = object(), object()  # a MARK on the stack; a value this scan does not track
_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
_GETS = {"GET", "BINGET", "LONG_BINGET"}
_TUPLES = {"TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_TUPLE"}
_SCALAR = (int, str, bool, float, type(None))


@dataclass
class PickleScan:
    """What one pickle stream declares: its opcode count and its persistent ids, in order."""

    ops: int = 0
    persistent_ids: list = field(default_factory=list)


def _pop(stack: list, op) -> list:
    """The values ``op`` takes off the stack (its slice above the last MARK included)."""
    before = op.stack_before
    if pickletools.markobject in before:
        if _MARK not in stack:
            raise ValueError(f"{op.name} without a MARK")
        at = len(stack) - 1 - stack[::-1].index(_MARK)
        items = stack[at + 1:]
        del stack[at:]
        below = before.index(pickletools.markobject)
    else:
        items, below = [], len(before)
    if below > len(stack):
        raise ValueError(f"{op.name} on a stack of {len(stack)} item(s)")
    taken = stack[len(stack) - below:] if below else []
    del stack[len(stack) - below:]
    return taken + items


def _value(op, arg, items: list):
    """What ``op`` pushes, when it is a value this scan tracks."""
    if op.name == "GLOBAL":
        return arg.replace(" ", ".")
    if op.name == "STACK_GLOBAL":
        return ".".join(items) if all(isinstance(i, str) for i in items) else _OTHER
    if op.name in _TUPLES:
        return tuple(items) if len(items) <= 8 else _OTHER
    if op.name in ("NONE", "NEWTRUE", "NEWFALSE"):
        return {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[op.name]
    if op.stack_before or op.arg is None or not isinstance(arg, _SCALAR):
        return _OTHER
    return _OTHER if isinstance(arg, str) and len(arg) > 256 else arg  # names, not payloads


def scan_pickle(stream, *, max_ops: int) -> PickleScan:
    """Read one pickle from ``stream`` (a ``BytesIO``: reads past its end come back short, so a
    declared length is never allocated) up to its STOP; ``max_ops`` bounds the objects built."""
    out, stack, memo = PickleScan(), [], {}
    for op, arg, pos in pickletools.genops(stream):
        out.ops += 1
        if out.ops > max_ops:
            raise ValueError(f"more than {max_ops:,} opcodes (objects) in one pickle")
        if op.name in _PUTS or op.name == "MEMOIZE":
            index = len(memo) if op.name == "MEMOIZE" else int(arg)
            if index > out.ops:
                raise ValueError(f"memo slot {index:,} at byte {pos} of a pickle of {out.ops:,} "
                                 "opcodes so far")
            if not stack:
                raise ValueError(f"{op.name} on an empty stack at byte {pos}")
            memo[index] = stack[-1]
            continue
        if op.name in _GETS:
            stack.append(memo.get(int(arg), _OTHER))
            continue
        items = _pop(stack, op)
        if op.name in ("BINPERSID", "PERSID"):
            out.persistent_ids.append(items[0] if op.name == "BINPERSID" else arg)
        if op.name == "DUP":
            stack += items * 2
            continue
        pushed = [_MARK] if op.name == "MARK" else [_value(op, arg, items)] * len(op.stack_after)
        stack += pushed
    return out
