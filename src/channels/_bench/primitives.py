"""The baselines: the stdlib primitive each backend wraps, and ``faster_fifo.Queue``.

Each is built in the parent and handed to the child processes at start; the
children stop on a poison pill (``None``), one per consumer.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.queues import Queue as MPQueue
from multiprocessing.synchronize import Lock
from typing import Protocol, cast

from .._errors import ConfigError
from .optional import FifoQueue, faster_fifo

__all__ = ["FASTER_FIFO", "RAW_PRIMITIVES", "RawEnds", "make_faster_fifo", "make_raw"]

#: The stdlib primitive each built-in backend wraps: the baseline it is compared with.
RAW_PRIMITIVES = {
    "thread": "queue.Queue put/get (threads)",
    "pipe": "multiprocessing.Pipe(duplex=False) send/recv",
    "queue": "multiprocessing.Queue put/get",
    "simplequeue": "multiprocessing.SimpleQueue put/get",
    "manager": "multiprocessing.Manager().Queue() put/get",
    # Not a primitive it wraps, but what a user would write by hand instead (see redis_loop).
    "redis": "redis-py Streams: XADD, XREADGROUP, XACK",
    "rediss": "redis-py Streams over TLS: XADD, XREADGROUP, XACK",
}

FASTER_FIFO = "faster_fifo.Queue put/get"

#: How long a baseline's blocking call may wait before the run counts as stuck, in seconds.
_WAIT = 120.0


class RawEnds(Protocol):
    """Both ends of a baseline, picklable to a child at start."""

    def putter(self) -> Callable[[object], None]:
        """Send one item."""
        ...

    def getter(self) -> Callable[[], object]:
        """Take one item."""
        ...

    def batch_putter(self) -> Callable[[list[object]], None]:
        """Send a list of items, in the baseline's best way to send many."""
        ...

    def batch_getter(self, max_items: int) -> Callable[[], list[object]]:
        """Take up to ``max_items`` items (a poison pill shows as a ``None`` item)."""
        ...


class _OneByOne:
    """Batches as one list per put and get: what a user of a plain primitive would write."""

    def putter(self) -> Callable[[object], None]:
        raise NotImplementedError

    def getter(self) -> Callable[[], object]:
        raise NotImplementedError

    def batch_putter(self) -> Callable[[list[object]], None]:
        return self.putter()

    def batch_getter(self, max_items: int) -> Callable[[], list[object]]:
        get = self.getter()

        def get_list() -> list[object]:
            got = get()
            return cast("list[object]", got) if isinstance(got, list) else [got]

        return get_list


class _PipeEnds(_OneByOne):
    """``Pipe(duplex=False)``; locked only when several processes share an end."""

    def __init__(
        self, reader: Connection, writer: Connection, rlock: Lock | None, wlock: Lock | None
    ) -> None:
        self.reader, self.writer, self.rlock, self.wlock = reader, writer, rlock, wlock

    def putter(self) -> Callable[[object], None]:
        send, lock = self.writer.send, self.wlock
        if lock is None:
            return send

        def locked_send(item: object) -> None:
            with lock:
                send(item)

        return locked_send

    def getter(self) -> Callable[[], object]:
        recv, lock = self.reader.recv, self.rlock
        if lock is None:
            return recv

        def locked_recv() -> object:
            with lock:
                return recv()

        return locked_recv


class _PutGet(Protocol):
    def put(self, item: object, /) -> None: ...

    def get(self) -> object: ...


class _QueueEnds(_OneByOne):
    """Any object with ``put`` and ``get``: a Queue, a SimpleQueue or a manager's queue proxy."""

    def __init__(self, q: _PutGet) -> None:
        self.q = q

    def putter(self) -> Callable[[object], None]:
        return self.q.put

    def getter(self) -> Callable[[], object]:
        return self.q.get


class _FifoEnds:
    """``faster_fifo.Queue``: batches through ``put_many`` and ``get_many``."""

    def __init__(self, q: FifoQueue) -> None:
        self.q = q

    def putter(self) -> Callable[[object], None]:
        put = self.q.put

        def put_one(item: object) -> None:
            put(item, True, _WAIT)

        return put_one

    def getter(self) -> Callable[[], object]:
        get = self.q.get

        def get_one() -> object:
            return get(True, _WAIT)

        return get_one

    def batch_putter(self) -> Callable[[list[object]], None]:
        put_many = self.q.put_many

        def put_list(items: list[object]) -> None:
            put_many(items, True, _WAIT)

        return put_list

    def batch_getter(self, max_items: int) -> Callable[[], list[object]]:
        get_many = self.q.get_many

        def get_list() -> list[object]:
            return get_many(True, _WAIT, max_items)

        return get_list


def make_raw(
    backend: str, ctx: BaseContext, maxsize: int, shared: bool
) -> tuple[RawEnds, Callable[[], None]]:
    """Build backend's raw primitive; return its ends and how to dispose of it."""
    if backend == "thread":
        return _QueueEnds(queue.Queue[object](maxsize)), lambda: None
    if backend == "pipe":
        reader, writer = ctx.Pipe(duplex=False)
        locks = (ctx.Lock(), ctx.Lock()) if shared else (None, None)

        def close_pipe() -> None:
            reader.close()
            writer.close()

        return _PipeEnds(reader, writer, *locks), close_pipe
    if backend == "queue":
        q: MPQueue[object] = ctx.Queue(maxsize)

        def close_queue() -> None:
            q.close()
            q.join_thread()

        return _QueueEnds(q), close_queue
    if backend == "simplequeue":
        sq = ctx.SimpleQueue()
        return _QueueEnds(sq), sq.close
    if backend == "manager":
        manager = ctx.Manager()
        return _QueueEnds(manager.Queue(maxsize)), manager.shutdown
    raise ConfigError(f"no raw primitive is known for backend {backend!r} here")


def make_faster_fifo(item_bytes: int) -> tuple[RawEnds, Callable[[], None]] | None:
    """A ``faster_fifo.Queue`` with room for a few items of ``item_bytes``; None if missing."""
    module = faster_fifo()
    if module is None:
        return None
    # Its buffer is fixed at creation: the default (1 MB) for small items, room
    # for two items and their framing for large ones, so that a put never waits
    # for a get to make room for a single item.
    q = module.Queue(max_size_bytes=max(1_000_000, 2 * item_bytes + (1 << 20)))
    return _FifoEnds(q), q.close
