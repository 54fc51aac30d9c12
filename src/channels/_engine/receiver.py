"""``ReceiverHandle``: the receiving half every process backend hands out.

A receiver's closed state belongs to its process. Every face (blocking,
``*_nowait``, batches, asyncio, trio) tries the core's non-blocking ``take``
once; if it found nothing, the one loop of ``driving`` runs a ``Take`` job:
this thread's (or task's) turn, a pause, a try, until items come.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from functools import partial
from typing import Generic, TypeVar, cast, final

from .._codec.payloads import Part, Payload, decode, decode_many, items_in
from .._codec.serializers import PASS_THROUGH, cannot_load, loader
from .._errors import (
    ChannelError,
    ChannelTimeout,
    ConfigError,
    EndOfChannel,
    SerializationError,
    WouldBlock,
)
from .._protocols import Receiver
from .._timing import NOWAIT_LOCK, deadline_after
from .closing import Closing
from .conditions import closed_receiver, nothing_ready
from .contract import ChannelStats, Core, Data, steps_on_loop
from .driving import arun, run
from .jobs import Take
from .turns import Turn
from .waiting import in_line

__all__ = ["ReceiverHandle", "aiterate"]

# Invariant here: the concrete classes both take and give T (variance lives on the protocols).
T = TypeVar("T")

_BYTES = (bytes, memoryview)


def _nowait() -> float:
    return time.monotonic() + NOWAIT_LOCK


def _batch_size(max_items: object) -> int:
    if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
        raise ConfigError(f"max_items must be a whole number >= 1, not {max_items!r}")
    return max_items


@final
class ReceiverHandle(Closing, Generic[T]):
    """The receiving half; ``Receiver[T]``. Closing it stops only this process's receiver."""

    __slots__ = ("__weakref__", "_closed", "_core", "_held", "_loads", "_turns")

    def __init__(self, core: Core, closed: bool = False) -> None:
        self._core = core
        self._closed = closed
        self._loads = cast("Callable[[Data], T]", loader(core.serializer))
        self._turns = not steps_on_loop(core)  # whether threads take turns to wait (``turn``)
        # Items taken out of the channel but not yet handed over (after an item of a
        # batch failed to deserialize, or an async call left before its take returned):
        # they belong to this process now, and the next call hands them over first. An
        # item that failed is kept as its error, so it is deserialized only once.
        self._held: deque[Payload | SerializationError] = deque()

    def recv(self, timeout: float | None = None) -> T:
        """Return the next item.

        Raises:
            EndOfChannel: every sender handle is closed and every item was received.
            ChannelTimeout: nothing arrived within ``timeout`` seconds.
            ChannelBroken: every process that sent on an open handle died without closing.
            ChannelClosed: this receiver was closed (also while waiting).
            SerializationError: the item could not be deserialized (it is consumed).
        """
        deadline = None if timeout is None else deadline_after(timeout)
        core = self._core
        # While another thread waits its turn, nothing was ready a moment ago: line up too.
        if not (self._held or self._closed or (self._turns and in_line(core, False))):
            raw = core.take(1, deadline)
            if not raw:  # nothing now: wait first, then try again
                return self._wait_for(1, deadline)[0]
            data = raw[0]
            if not isinstance(data, _BYTES):  # a large item's buffers, or a stored batch's
                return cast(T, decode(core.serializer, data))
            try:  # the common case, decoded here at once
                return self._loads(data)
            except PASS_THROUGH:
                raise
            except BaseException as exc:
                raise cannot_load(core.serializer, exc) from exc
        return self._recv_many(1, deadline)[0]

    def recv_nowait(self) -> T:
        """Return the next item if one is ready now, else raise ``WouldBlock``."""
        got = self._take_now(1)
        if not got:
            nothing_ready()
        return got[0]

    def recv_many(self, max_items: int, timeout: float | None = None) -> list[T]:
        """Wait like ``recv`` for an item, then return every ready item up to ``max_items``."""
        return self._recv_many(_batch_size(max_items), deadline_after(timeout))

    def _recv_many(self, size: int, deadline: float | None) -> list[T]:
        if self._held or not (self._turns and in_line(self._core, False)):
            got = self._take(size, deadline)
            if got:
                return got
        return self._wait_for(size, deadline)

    def _wait_for(self, size: int, deadline: float | None) -> list[T]:
        """Up to ``size`` items, once nothing was ready: pause, try, until some come."""
        job = self._job(size)
        run(self._core, job, deadline, tried=True, check=self._check_open)
        return self._decoded(job.got)

    def _job(self, size: int) -> Take[Payload | SerializationError]:
        return Take(partial(self._take_raw, size), self._keep)

    def _keep(self, raw: list[Payload | SerializationError]) -> None:
        """Items a call took for a task that left: the next call hands them over first."""
        self._held.extendleft(reversed(raw))

    def _check_open(self) -> None:
        if self._closed:
            closed_receiver()

    def recv_many_nowait(self, max_items: int) -> list[T]:
        """Every ready item up to ``max_items``, or ``WouldBlock`` if none is ready."""
        got = self._take_now(_batch_size(max_items))
        if not got:
            nothing_ready()
        return got

    async def arecv(self, timeout: float | None = None) -> T:
        """``recv`` for asyncio. Cancelled, it returned no item and lost none: an item
        its take was still bringing is kept for this receiver's next call."""
        got = await self._areceive(1, deadline_after(timeout))
        return got[0]

    async def arecv_many(self, max_items: int, timeout: float | None = None) -> list[T]:
        """``recv_many`` for asyncio."""
        return await self._areceive(_batch_size(max_items), deadline_after(timeout))

    async def _areceive(self, size: int, deadline: float | None) -> list[T]:
        """Wait for this task's turn on the channel, then for up to ``size`` items."""
        if self._held or self._closed:
            return self._take(size, deadline)
        job = self._job(size)
        await arun(self._core, job, deadline)
        return self._decoded(job.got)

    async def _atry(self, turn: Turn, size: int, deadline: float | None) -> list[T]:
        """With this task's turn on the channel: up to ``size`` items ready now; [] if none is."""
        raw = await turn.step(self._job(size), deadline)
        return self._decoded(raw) if raw else []

    def _take_now(self, size: int) -> list[T]:
        try:
            return self._take(size, _nowait())
        except ChannelTimeout as exc:
            raise WouldBlock("another process holds the channel's lock") from exc

    def _take(self, size: int, deadline: float | None) -> list[T]:
        """Up to ``size`` items ready now, deserialized; [] if none is."""
        return self._decoded(self._take_raw(size, deadline))

    def _take_raw(self, size: int, deadline: float | None) -> list[Payload | SerializationError]:
        """Up to ``size`` items ready now; [] if none is. Items held from before come first,
        on their own."""
        if self._closed:
            closed_receiver()
        held = self._held
        if held:
            raw: list[Payload | SerializationError] = []
            count = 0
            with contextlib.suppress(IndexError):  # another thread may empty it meanwhile
                while count < size:
                    data = held.popleft()
                    if isinstance(data, Part) and data.stop - data.start > size - count:
                        data, rest = data.split(size - count)
                        held.appendleft(rest)
                    raw.append(data)
                    count += items_in(data)
            if raw:
                return raw
        return cast("list[Payload | SerializationError]", self._core.take(size, deadline))

    def _decoded(self, raw: Sequence[Payload | SerializationError]) -> list[T]:
        """Deserialize ``raw``; from the first item that fails on, the rest is held.

        Good items before a failing one are handed over first; the failing one's
        error is raised by the next call, or by this one if it is the first.
        """
        if len(raw) == 1:  # the common cases, at once
            one = raw[0]
            kind = type(one)
            if kind in _BYTES:
                try:
                    return [self._loads(cast(bytes, one))]
                except PASS_THROUGH:
                    raise
                except BaseException as exc:
                    raise cannot_load(self._core.serializer, exc) from exc
            if kind is Part:  # a stored batch; it fails as a whole, raising here
                return cast("list[T]", cast(Part, one).items(self._core.serializer))
        cut = next((i for i, d in enumerate(raw) if isinstance(d, SerializationError)), len(raw))
        payloads = cast("Sequence[Payload]", raw[:cut])
        items, done, error = decode_many(self._core.serializer, payloads)
        if error is None and cut == len(raw):
            return cast("list[T]", items)
        rest: list[Payload | SerializationError] = list(raw[done:])
        if error is not None:
            rest[0] = error
        if items:
            self._held.extendleft(reversed(rest))
            return cast("list[T]", items)
        self._held.extendleft(reversed(rest[1:]))
        failed = rest[0]
        assert isinstance(failed, SerializationError)
        raise failed

    def fileno(self) -> int:
        """A descriptor that turns readable when an item may be ready, for ``selectors``.

        After it turns readable, call ``recv_nowait`` (which may still find
        nothing: another receiver may have been faster). Backends that wait on a
        server have no such descriptor and raise ``ChannelError``.
        """
        fd = self._core.ready_fd(False)
        if fd is None:
            raise ChannelError(f"a {self._core!r} channel has no descriptor to wait on")
        return fd

    def stats(self) -> ChannelStats:
        """A snapshot of the channel's counts (see ``ChannelStats``)."""
        return self._core.stats()

    def task_done(self) -> None:
        """Mark the item this receiver took longest ago, and has not marked, as done.

        Raises ``ChannelError`` if there is nothing to mark, or if the channel was
        not opened with ``joinable=True``.
        """
        self._core.task_done()

    def __iter__(self) -> Iterator[T]:
        """Yield items until the end of the channel."""
        while True:
            try:
                item = self.recv()
            except EndOfChannel:
                return
            yield item

    def __aiter__(self) -> AsyncIterator[T]:
        """Yield items to ``async for`` until the end of the channel."""
        return aiterate(self)

    def close(self) -> None:
        """Stop this receiver in this process; other receivers go on.

        A ``recv`` waiting on it in another thread raises ``ChannelClosed``.
        """
        if not self._closed:
            self._closed = True
            self._core.close_receiver()

    @property
    def closed(self) -> bool:
        """Whether this receiver was closed in this process."""
        return self._closed

    def __reduce__(self) -> tuple[object, ...]:
        return (ReceiverHandle, (self._core, self._closed))

    def __repr__(self) -> str:
        return f"<Receiver of {self._core!r}{' (closed)' if self._closed else ''}>"


async def aiterate(receiver: Receiver[T]) -> AsyncIterator[T]:
    """Yield what ``receiver.arecv()`` gives until the end of the channel."""
    while True:
        try:
            item = await receiver.arecv()
        except EndOfChannel:
            return
        yield item
