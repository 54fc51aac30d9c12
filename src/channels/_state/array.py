"""``channels.Array[T]``: a fixed-length sequence of ints, floats or bools in shared memory."""

from __future__ import annotations

from array import array as packed
from collections.abc import Iterable, Iterator, MutableSequence
from typing import Any, NoReturn, final, overload

from .._errors import ChannelError, ConfigError
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

__all__ = ["Array"]


@final
class Array(MutableSequence[Item]):
    """A ``MutableSequence`` of ints, floats or bools shared by processes.

    ``Array[float](10)`` holds ten zeros, ``Array[int]([1, 2, 3])`` those
    items. Its length is fixed: items are read and written in place, never
    inserted or deleted. A single item's read or write is atomic; hold ``.lock``
    around anything that must see or change several at once. Pass it to a
    child process as an argument when the child starts, under any start method.
    """

    __slots__ = ("__weakref__", "_kind", "_length", "_lock", "_segment", "_view")

    def __class_getitem__(cls, item: object) -> Any:
        return subscript(cls, item, "Array")

    def __init__(self, size_or_items: int | Iterable[Item], /) -> None:
        if isinstance(size_or_items, int):
            raise ConfigError("Array(n) needs the item type: write Array[int](n)")
        items = list(size_or_items)
        if not items:
            raise ConfigError("Array([]) needs the item type: write Array[int]([])")
        self._create(kind_of_value(items[0], "Array"), items)

    @classmethod
    def _typed(cls, item_type: object, size_or_items: object) -> Array[Any]:
        array = cls.__new__(cls)
        kind = kind_of(item_type, "Array")
        if isinstance(size_or_items, bool) or not isinstance(size_or_items, int | Iterable):
            raise ConfigError(
                f"an Array is made from a length or an iterable of items, "
                f"not {type(size_or_items).__name__}"
            )
        if isinstance(size_or_items, int):
            if size_or_items < 0:
                raise ConfigError(f"an Array's length is >= 0, not {size_or_items}")
            array._create(kind, [kind.type(0)] * size_or_items)
        else:
            array._create(kind, list(size_or_items))  # pyright: ignore[reportUnknownArgumentType]
        return array

    def _create(self, kind: Kind, items: list[Any]) -> None:
        owner = f"Array[{kind.name}]"
        values = [kind.coerce(item, owner) for item in items]
        segment = Segment.create(DATA_AT + ITEM_BYTES * max(1, len(values)), owner)
        self._attach(segment, kind, len(values), Lock._inside(segment, 0))  # pyright: ignore[reportPrivateUsage]
        if values:
            self._view[:] = packed(kind.format, values)

    @classmethod
    def _restore(cls, segment: Segment, kind: Kind, length: int) -> Array[Any]:
        array = cls.__new__(cls)
        array._attach(segment, kind, length, Lock._view(segment, 0))  # pyright: ignore[reportPrivateUsage]
        return array

    def _attach(self, segment: Segment, kind: Kind, length: int, lock: Lock) -> None:
        self._segment = segment
        self._kind = kind
        self._length = length
        self._lock = lock
        self._view = items_view(segment.map, kind, length)

    @property
    def lock(self) -> Lock:
        """The lock to hold around a change that spans several items."""
        return self._lock

    def get_lock(self) -> Lock:
        """``lock``, under the name ``multiprocessing.Array`` uses."""
        return self._lock

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> Item: ...

    @overload
    def __getitem__(self, index: slice) -> list[Item]: ...

    def __getitem__(self, index: int | slice) -> Item | list[Item]:
        if isinstance(index, slice):
            return [load(self._kind, raw) for raw in self._view[index].tolist()]  # type: ignore[misc]
        return load(self._kind, self._view[self._index(index)])  # type: ignore[return-value]

    @overload
    def __setitem__(self, index: int, value: Item) -> None: ...

    @overload
    def __setitem__(self, index: slice, value: Iterable[Item]) -> None: ...

    def __setitem__(self, index: int | slice, value: Item | Iterable[Item]) -> None:
        owner = f"Array[{self._kind.name}]"
        if isinstance(index, slice):
            if not isinstance(value, Iterable):
                raise ChannelError(f"a slice of an {owner} is set from an iterable of items")
            values = [self._kind.coerce(item, owner) for item in value]
            span = range(*index.indices(self._length))
            if len(values) != len(span):
                raise ChannelError(
                    f"an {owner} has a fixed length: a slice of {len(span)} items cannot "
                    f"take {len(values)}"
                )
            for at, item in zip(span, values, strict=True):
                self._view[at] = item
            return
        self._view[self._index(index)] = self._kind.coerce(value, owner)

    def __delitem__(self, index: int | slice) -> NoReturn:
        raise ChannelError(
            f"an Array[{self._kind.name}] has a fixed length: nothing can be deleted"
        )

    def insert(self, index: int, value: Item) -> NoReturn:
        """Not possible: an ``Array`` has a fixed length (``ChannelError``)."""
        raise ChannelError(f"an Array[{self._kind.name}] has a fixed length: nothing can be added")

    def __iter__(self) -> Iterator[Item]:
        for at in range(self._length):
            yield load(self._kind, self._view[at])  # type: ignore[misc]

    def _index(self, index: int) -> int:
        if not isinstance(index, int):
            raise ChannelError(f"Array indices are integers or slices, not {type(index).__name__}")
        at = index + self._length if index < 0 else index
        if not 0 <= at < self._length:
            raise IndexError("Array index out of range")
        return at

    def __reduce__(self) -> tuple[object, ...]:
        return (Array._restore, (self._segment, self._kind, self._length))

    def __repr__(self) -> str:
        return f"Array[{self._kind.name}]({list(self)!r})"
