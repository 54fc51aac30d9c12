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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import final

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
        if threshold and serializer is PICKLE:
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
