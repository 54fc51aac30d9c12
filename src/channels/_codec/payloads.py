"""The codec every channel uses: an item to what a core moves, and back.

Most items become one byte string. A core that can move large buffers apart
(``Core.shm_threshold`` > 0, the local backends) may also get an ``OutOfBand``
payload: a pickle (protocol 5) whose large buffers (numpy arrays,
``bytearray``, ``pickle.PickleBuffer``) stay outside it, or a large ``bytes``
item as it is. The core moves those buffers through shared memory, and the
receiver's buffers may be views of that memory.

A core that stores batches (``stores_batches``, the unbounded local channels)
gets a whole ``send_many`` as one ``Batch``: the list of items pickled once, as
the "list trick" does by hand. It comes back as ``Part`` payloads, each a run
of that list's items, so a receiver that asks for fewer items than a stored
batch holds still gets exactly its count.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import cast, final

from .._errors import SerializationError
from .serializers import (
    PASS_THROUGH,
    PICKLE,
    Serializer,
    cannot_load,
    describe,
    loads,
    serializer_name,
)

__all__ = [
    "PICKLED",
    "RAW",
    "Batch",
    "Frame",
    "OutOfBand",
    "Part",
    "Payload",
    "decode",
    "encode",
    "in_band",
    "items_in",
    "plain",
]

#: ``OutOfBand.kind``: a pickle whose buffers travel apart, or one ``bytes`` item as it is.
PICKLED, RAW = 0, 1


@final
@dataclass(frozen=True, slots=True)
class OutOfBand:
    """An item whose large buffers travel apart from the rest of it."""

    kind: int
    head: bytes
    buffers: Sequence[memoryview]

    def __len__(self) -> int:
        return len(self.head) + sum(b.nbytes for b in self.buffers)


#: The most items, and bytes, one ``Batch`` may hold (what a stored frame can describe).
BATCH_ITEMS, BATCH_BYTES = (1 << 28) - 1, (1 << 32) - 1


@final
class Batch:
    """Several items as one pickle of their list: what ``send_many`` puts in one piece."""

    __slots__ = ("count", "data")

    def __init__(self, data: bytes, count: int) -> None:
        self.data = data
        self.count = count


@final
class Frame:
    """A stored batch as a receiver read it; its items are loaded once, by the first part."""

    __slots__ = ("count", "data", "items")

    def __init__(self, data: bytes, count: int) -> None:
        self.data = data
        self.count = count
        self.items: list[object] | None = None

    def load(self, serializer: Serializer) -> list[object]:
        items = self.items
        if items is None:
            loaded = loads(serializer, self.data)
            if not _is_batch(loaded, self.count):
                raise SerializationError(
                    f"a stored batch of {self.count} items holds {_describe_batch(loaded)}"
                )
            items = self.items = cast("list[object]", loaded)
        return items


def _is_batch(found: object, count: int) -> bool:
    return type(found) is list and len(cast("list[object]", found)) == count


def _describe_batch(found: object) -> str:
    if type(found) is list:
        return f"{len(cast('list[object]', found))} items"
    return type(found).__qualname__


@final
class Part:
    """Items ``start`` to ``stop`` of a stored batch, as one take got them."""

    __slots__ = ("frame", "start", "stop")

    def __init__(self, frame: Frame, start: int, stop: int) -> None:
        self.frame = frame
        self.start = start
        self.stop = stop

    def items(self, serializer: Serializer) -> list[object]:
        """Its items, loading the batch if no part of it was loaded here yet."""
        items = self.frame.load(serializer)
        if self.start == 0 and self.stop == len(items):
            return items
        return items[self.start : self.stop]

    def split(self, count: int) -> tuple[Part, Part]:
        """The first ``count`` items, and the rest (in this process: nothing is taken)."""
        cut = self.start + count
        return Part(self.frame, self.start, cut), Part(self.frame, cut, self.stop)


#: What a core moves: bytes, an item with buffers apart, or (local cores) a batch or a part.
Payload = bytes | memoryview | OutOfBand | Batch | Part


def items_in(payload: Payload | object) -> int:
    """How many items a payload carries."""
    kind = type(payload)
    if kind is Part:
        part = cast(Part, payload)
        return part.stop - part.start
    if kind is Batch:
        return cast(Batch, payload).count
    return 1


def encode(serializer: Serializer, item: object, threshold: int, limit: int | None) -> Payload:
    """Serialize ``item``; with ``threshold``, buffers that large travel out of band.

    Raises ``SerializationError`` (chaining the cause) if it cannot be
    serialized or is larger than ``limit``.
    """
    try:
        data: bytes | memoryview | OutOfBand
        if serializer is PICKLE and _plain(item, threshold):
            data = pickle.dumps(item, _PROTOCOL)
        elif threshold and serializer is PICKLE:
            data = _pickle_apart(item, threshold)
        else:
            data = serializer.dumps(item)
    except PASS_THROUGH:
        raise
    except BaseException as exc:
        raise SerializationError(
            f"cannot send {type(item).__qualname__} with {serializer_name(serializer)}: "
            f"{describe(exc)}"
        ) from exc
    if limit is not None and len(data) > limit:
        raise SerializationError(
            f"an item of type {type(item).__qualname__} serializes to {len(data)} bytes, "
            f"more than max_message_size={limit}; nothing was sent"
        )
    return data


#: Types whose pickle needs no reducer and holds no buffer: pickled straight away.
_SCALARS = frozenset({int, float, str, bool, complex, type(None)})
_PROTOCOL = pickle.HIGHEST_PROTOCOL
_SHORT = 16  # a tuple or list this long of scalars is pickled straight away too


def _plain(item: object, threshold: int) -> bool:
    """Whether ``item`` pickles the same with or without the channel's pickler."""
    kind = type(item)
    if kind in _SCALARS:
        return True
    if kind is bytes:
        return not threshold or len(cast(bytes, item)) < threshold
    if kind is tuple or kind is list:
        items = cast("tuple[object, ...]", item)
        return len(items) <= _SHORT and set(map(type, items)) <= _SCALARS
    return False


#: ``encode`` with one channel's settings bound (``encoder``).
Encoder = Callable[[object], Payload]


def encoder(serializer: Serializer, threshold: int, limit: int | None) -> Encoder:
    """``encode`` for one channel's settings; with pickle and no size limit, scalars go
    straight to ``pickle.dumps`` (a handle makes this once, and calls it for each item)."""
    if serializer is not PICKLE or limit is not None:
        return lambda item: encode(serializer, item, threshold, limit)
    dumps, scalars = pickle.dumps, _SCALARS

    def encode_one(item: object) -> Payload:
        if type(item) in scalars:
            return dumps(item, _PROTOCOL)
        return encode(serializer, item, threshold, limit)

    return encode_one


def encode_many(
    serializer: Serializer,
    items: Iterable[object],
    threshold: int,
    limit: int | None,
    batches: bool = False,
) -> list[Payload]:
    """``encode`` each of ``items``: scalars go straight to pickle, the rest one by one.

    With ``batches`` (a core that stores them) and pickle, the whole list is
    pickled once into a ``Batch``, unless that pickle reaches ``threshold``
    (its large buffers then travel apart, item by item) or fails (the item at
    fault is then named by the error).
    """
    if batches and serializer is PICKLE and limit is None:
        listed: list[object] = items if isinstance(items, list) else list(items)
        items = listed
        if 1 < len(listed) <= BATCH_ITEMS:
            try:
                data = PICKLE.dumps(listed)
            except PASS_THROUGH:
                raise
            except BaseException:
                pass  # encoded one by one below, so the error names the item
            else:
                if len(data) <= BATCH_BYTES and (not threshold or len(data) < threshold):
                    return [Batch(data, len(listed))]
    if serializer is not PICKLE or limit is not None:
        return [encode(serializer, item, threshold, limit) for item in items]
    dumps, scalars = pickle.dumps, _SCALARS
    return [
        dumps(item, _PROTOCOL)
        if type(item) in scalars
        else encode(serializer, item, threshold, limit)
        for item in items
    ]


def _pickle_apart(item: object, threshold: int) -> bytes | OutOfBand:
    if type(item) is bytes and len(item) >= threshold:
        return OutOfBand(RAW, b"", [memoryview(item)])
    apart: list[memoryview] = []

    def keep_apart(buffer: pickle.PickleBuffer) -> bool:
        view = buffer.raw()
        if view.nbytes < threshold:
            return True  # in band
        apart.append(view)
        return False

    head = PICKLE.dumps_apart(item, keep_apart)
    return OutOfBand(PICKLED, head, apart) if apart else head


def plain(data: Payload) -> bytes:
    """The bytes of a payload, for a core that moves bytes only (its ``shm_threshold`` is 0)."""
    if isinstance(data, OutOfBand):
        return in_band(data)
    if isinstance(data, Batch | Part):
        raise TypeError("only a core that stores batches moves a batch")
    return data if isinstance(data, bytes) else bytes(data)


def in_band(payload: OutOfBand) -> bytes:
    """The same item as one pickle, buffers inside (where shared memory is not to be had)."""
    if payload.kind == RAW:
        return PICKLE.dumps(payload.buffers[0].obj)
    return pickle.dumps(pickle.loads(payload.head, buffers=payload.buffers), protocol=5)


def decode_many(
    serializer: Serializer, raw: Sequence[Payload]
) -> tuple[list[object], int, SerializationError | None]:
    """Deserialize ``raw`` in order, stopping at the first payload that fails.

    Returns the items before it, how many payloads they came from, and the error
    that says why the next one failed (None if none did). Each payload is
    deserialized once, so its side effects run once; a part of a stored batch
    fails or succeeds as a whole.
    """
    items: list[object] = []
    load = pickle.loads if serializer is PICKLE else serializer.loads
    for done, data in enumerate(raw):
        try:
            kind = type(data)
            if kind is Part:
                items += cast(Part, data).items(serializer)
            elif kind is OutOfBand:
                items.append(decode(serializer, data))
            else:
                items.append(load(cast(bytes, data)))
        except PASS_THROUGH:
            raise
        except SerializationError as exc:
            return items, done, exc
        except BaseException as exc:
            error = cannot_load(serializer, exc)
            error.__cause__ = exc
            return items, done, error
    return items, len(raw), None


def decode(serializer: Serializer, data: Payload) -> object:
    """Deserialize a received payload of one item; ``SerializationError`` on any failure."""
    if isinstance(data, Part):
        return data.frame.load(serializer)[data.start]
    if isinstance(data, Batch):
        raise SerializationError("a batch is not one item")
    if not isinstance(data, OutOfBand):
        return loads(serializer, data)
    try:
        if data.kind == RAW:
            return data.buffers[0].tobytes()
        return pickle.loads(data.head, buffers=data.buffers)
    except PASS_THROUGH:
        raise
    except BaseException as exc:
        raise cannot_load(serializer, exc) from exc
