"""The item types shared memory holds (``int``, ``float``, ``bool``), and their layout.

A segment of a ``Value`` or ``Array`` starts with its lock's mutex; the items
follow, eight bytes each, aligned, so a single read or write of one item is
never torn.
"""

from __future__ import annotations

import mmap
import operator
import types
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from .._errors import ChannelError, ConfigError
from .._process.robust_lock import MUTEX_BYTES

__all__ = [
    "DATA_AT",
    "ITEM_BYTES",
    "Item",
    "Kind",
    "TypedAlias",
    "items_view",
    "kind_of",
    "kind_of_value",
    "load",
    "subscript",
]

# Invariant, constrained: the shared memory holds exactly one of these types.
Item = TypeVar("Item", int, float, bool)

#: Where the items start in a segment, after the lock.
DATA_AT = MUTEX_BYTES
ITEM_BYTES = 8


@dataclass(frozen=True)
class Kind:
    """One item type: its name, its ``memoryview`` format, and how a value is checked."""

    type: type[int] | type[float] | type[bool]
    format: str

    @property
    def name(self) -> str:
        return self.type.__name__

    def coerce(self, value: object, owner: str) -> int | float | bool:
        """``value`` as this kind, or a ``ChannelError`` that says why it does not fit."""
        try:
            if self.type is bool:
                if isinstance(value, bool) or type(value) is int:
                    return bool(value)
            elif self.type is int:
                number = operator.index(value)  # type: ignore[arg-type]
                if -(1 << 63) <= number < (1 << 63):
                    return number
                raise ChannelError(f"{value!r} does not fit in a {owner} (64-bit signed)")
            elif isinstance(value, int | float):
                return float(value)
        except TypeError:
            pass
        raise ChannelError(f"a {owner} holds {self.name} items, not {type(value).__name__}")


_KINDS = {int: Kind(int, "q"), float: Kind(float, "d"), bool: Kind(bool, "q")}


def kind_of(item_type: object, what: str) -> Kind:
    """The kind of ``item_type``; ``ConfigError`` for a type shared memory cannot hold."""
    kind = _KINDS.get(item_type) if isinstance(item_type, type) else None
    if kind is None:
        name = getattr(item_type, "__name__", repr(item_type))
        raise ConfigError(f"a {what} holds int, float or bool items, not {name}")
    return kind


def kind_of_value(value: object, what: str) -> Kind:
    """The kind an initial value implies, when no item type was written (``Value(0.5)``)."""
    kind = _KINDS.get(cast("type[int]", type(value)))
    if kind is None:
        raise ConfigError(
            f"a {what} holds int, float or bool items, not {type(value).__name__}: "
            f"write the item type, as in {what}[int](0)"
        )
    return kind


def items_view(buffer: mmap.mmap, kind: Kind, length: int) -> memoryview[Any]:
    """The ``length`` items of a segment, as numbers of ``kind``."""
    raw = memoryview(buffer)[DATA_AT : DATA_AT + ITEM_BYTES * length]
    return raw.cast("d") if kind.format == "d" else raw.cast("q")


def load(kind: Kind, raw: int | float) -> int | float | bool:
    """An item as read from shared memory (a bool is stored as 0 or 1)."""
    return bool(raw) if kind.type is bool else raw


class _MadeByType(Protocol):
    def _typed(self, item_type: object, /, *args: object) -> object: ...


class TypedAlias(types.GenericAlias):
    """``Value[int]`` at run time: calling it makes a ``Value`` that holds ints.

    A plain generic alias calls the class without telling it the type; shared
    memory needs the type before it is made.
    """

    def __call__(self, *args: object) -> object:
        return cast("_MadeByType", self.__origin__)._typed(  # pyright: ignore[reportPrivateUsage]
            self.__args__[0], *args
        )


def subscript(cls: type, item: object, what: str) -> object:
    """``cls[item]`` at run time: a ``TypedAlias`` for an item type, else the usual alias."""
    if isinstance(item, tuple):
        items = cast("tuple[object, ...]", item)
        item = items[0] if len(items) == 1 else items
    if isinstance(item, TypeVar):
        return types.GenericAlias(cls, (item,))
    kind_of(item, what)
    return TypedAlias(cls, (item,))
