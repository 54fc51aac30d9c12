"""``channels.Value[T]``: one int, float or bool in shared memory, with its own lock."""

from __future__ import annotations

from typing import Any, Generic, final

from .kinds import (
    DATA_AT,
    ITEM_BYTES,
    Item,
    Kind,
    items_view,
    kind_of,
    kind_of_value,
    load,
    subscript,
)
from .lock import Lock
from .segment import Segment

__all__ = ["Value"]


@final
class Value(Generic[Item]):
    """One ``int``, ``float`` or ``bool`` shared by processes: ``Value[int](0)``.

    A single read or write of ``.value`` is atomic; a read-modify-write such
    as ``+= 1`` is not, so hold ``.lock`` around it. Pass it to a child process
    as an argument when the child starts, under any start method. Another item
    type raises ``ConfigError``.
    """

    __slots__ = ("__weakref__", "_kind", "_lock", "_segment", "_view")

    def __class_getitem__(cls, item: object) -> Any:
        return subscript(cls, item, "Value")

    def __init__(self, initial: Item, /) -> None:
        self._create(kind_of_value(initial, "Value"), initial)

    @classmethod
    def _typed(cls, item_type: object, initial: object) -> Value[Any]:
        value = cls.__new__(cls)
        value._create(kind_of(item_type, "Value"), initial)
        return value

    def _create(self, kind: Kind, initial: object) -> None:
        first = kind.coerce(initial, f"Value[{kind.name}]")
        segment = Segment.create(DATA_AT + ITEM_BYTES, f"Value[{kind.name}]")
        self._attach(segment, kind, Lock._inside(segment, 0))  # pyright: ignore[reportPrivateUsage]
        self._view[0] = first

    @classmethod
    def _restore(cls, segment: Segment, kind: Kind) -> Value[Any]:
        value = cls.__new__(cls)
        value._attach(segment, kind, Lock._view(segment, 0))  # pyright: ignore[reportPrivateUsage]
        return value

    def _attach(self, segment: Segment, kind: Kind, lock: Lock) -> None:
        self._segment = segment
        self._kind = kind
        self._lock = lock
        self._view = items_view(segment.map, kind, 1)

    @property
    def value(self) -> Item:
        """The value now."""
        return load(self._kind, self._view[0])  # type: ignore[return-value]

    @value.setter
    def value(self, new: Item) -> None:
        self._view[0] = self._kind.coerce(new, f"Value[{self._kind.name}]")

    @property
    def lock(self) -> Lock:
        """The lock to hold around a read-modify-write of ``value``."""
        return self._lock

    def get_lock(self) -> Lock:
        """``lock``, under the name ``multiprocessing.Value`` uses."""
        return self._lock

    def __reduce__(self) -> tuple[object, ...]:
        return (Value._restore, (self._segment, self._kind))

    def __repr__(self) -> str:
        return f"Value[{self._kind.name}]({self.value!r})"
