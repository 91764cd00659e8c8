"""A tiny decorator registry (torchdistill style) for architectures and DFKD methods."""

from __future__ import annotations

from typing import Callable, Dict, Generic, TypeVar

from .errors import InputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a public name to a factory; unknown names are an InputError listing the known ones.

    ``name_attr``: the attribute the registry sets on every registered object to its public name
    (methods read their own name from it), so a name is written once, in ``register``."""

    def __init__(self, kind: str, *, name_attr: str | None = None):
        self.kind = kind
        self.name_attr = name_attr
        self._items: Dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise KeyError(f"{self.kind} {name!r} registered twice")
            if self.name_attr:
                setattr(obj, self.name_attr, name)
            self._items[name] = obj
            return obj
        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise InputError(
                f"unknown {self.kind} {name!r}: expected one of {', '.join(sorted(self._items))}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items
