"""The codec every channel uses: an item to what a core moves, and back.

Most items become one byte string. A core that can move large buffers apart
(``Core.shm_threshold`` > 0, the local backends) may also get an ``OutOfBand``
payload: a pickle (protocol 5) whose large buffers (numpy arrays,
``bytearray``, ``pickle.PickleBuffer``) stay outside it, or a large ``bytes``
item as it is. The core moves those buffers through shared memory, and the
receiver's buffers may be views of that memory.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import cast, final

from ._errors import SerializationError
from ._serialize import (
    PASS_THROUGH,
    PICKLE,
    Serializer,
    cannot_load,
    describe,
    loads,
    serializer_name,
)

__all__ = ["PICKLED", "RAW", "OutOfBand", "Payload", "decode", "encode", "in_band", "plain"]

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


#: What a core moves: bytes, or an item with buffers apart.
Payload = bytes | memoryview | OutOfBand


def encode(serializer: Serializer, item: object, threshold: int, limit: int | None) -> Payload:
    """Serialize ``item``; with ``threshold``, buffers that large travel out of band.

    Raises ``SerializationError`` (chaining the cause) if it cannot be
    serialized or is larger than ``limit``.
    """
    try:
        data: Payload
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
    serializer: Serializer, items: Iterable[object], threshold: int, limit: int | None
) -> list[Payload]:
    """``encode`` each of ``items``: scalars go straight to pickle, the rest one by one."""
    if serializer is not PICKLE or limit is not None:
        return [encode(serializer, item, threshold, limit) for item in items]
    dumps, scalars = pickle.dumps, _SCALARS
    return [
        dumps(item, _PROTOCOL)
        if type(item) in scalars
        else encode(serializer, item, threshold, limit)
        for item in items
    ]


def _pickle_apart(item: object, threshold: int) -> Payload:
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
    return data if isinstance(data, bytes) else bytes(data)


def in_band(payload: OutOfBand) -> bytes:
    """The same item as one pickle, buffers inside (where shared memory is not to be had)."""
    if payload.kind == RAW:
        return PICKLE.dumps(payload.buffers[0].obj)
    return pickle.dumps(pickle.loads(payload.head, buffers=payload.buffers), protocol=5)


def decode_many(
    serializer: Serializer, raw: Sequence[Payload]
) -> tuple[list[object], SerializationError | None]:
    """Deserialize ``raw`` in order, stopping at the first item that fails.

    Returns the items before it and the error that says why it failed (None if
    none did). Each item is deserialized once, so its side effects run once.
    """
    items: list[object] = []
    load = pickle.loads if serializer is PICKLE else serializer.loads
    for data in raw:
        try:
            items.append(decode(serializer, data) if isinstance(data, OutOfBand) else load(data))
        except PASS_THROUGH:
            raise
        except SerializationError as exc:
            return items, exc
        except BaseException as exc:
            error = cannot_load(serializer, exc)
            error.__cause__ = exc
            return items, error
    return items, None


def decode(serializer: Serializer, data: Payload) -> object:
    """Deserialize a received payload; ``SerializationError`` on any failure."""
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
