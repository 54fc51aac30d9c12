"""The handles of a ``thread`` channel: the engine's contract, with a lean per-item path.

``send`` and ``recv`` (and their ``*_nowait`` and asyncio faces) first try to
move the item under the core's lock in a few statements; only when that cannot
be done now (full, empty, closed, a timeout to check) do they fall back to the
engine's one waiting loop (``driving``) over the core.
Items are the very objects sent: nothing is serialized.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from functools import partial
from typing import Generic, NoReturn, TypeVar, cast, final

from ..._engine.closing import Closing
from ..._engine.conditions import closed_receiver, full, nothing_ready
from ..._engine.contract import ChannelStats
from ..._engine.driving import arun, run
from ..._engine.jobs import Put, Take
from ..._engine.receiver import aiterate
from ..._errors import ChannelError, ChannelTimeout, ConfigError, EndOfChannel
from ..._timing import deadline_after
from .core import NOTHING, ThreadCore, cannot_cross

__all__ = ["ThreadReceiver", "ThreadSender"]

# Invariant here: the concrete classes both take and give T (variance lives on the protocols).
T = TypeVar("T")


def _batch_size(max_items: object) -> int:
    if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
        raise ConfigError(f"max_items must be a whole number >= 1, not {max_items!r}")
    return max_items


@final
class ThreadSender(Closing, Generic[T]):
    """A counted sender handle of a thread channel; ``Sender[T]``. Safe from many threads."""

    __slots__ = ("__weakref__", "_core", "_token")

    def __init__(self, core: ThreadCore, token: int) -> None:
        self._core = core
        self._token = token

    def send(self, item: T, timeout: float | None = None) -> None:
        """Put ``item`` (the object itself) in the channel, waiting while it is full.

        Raises:
            ChannelClosed: this handle is closed or the channel has ended.
            ChannelTimeout: a bounded channel stayed full for ``timeout`` seconds.
            ChannelBroken: the channel is full and its receiver is closed.
        """
        if timeout is None and self._send_now(item):
            return
        run(self._core, Put(self._core, self._token, [item]), deadline_after(timeout))

    def _send_now(self, item: T) -> bool:
        """The per-item path: put ``item`` now if the channel takes it at once."""
        core = self._core
        if core.fast_put:
            if self._token not in core.senders:
                return False
            core.items.append(item)
            next(core.sent)
            if core.watch_put:
                core.after_put(item)
            return True
        return core.put_one(self._token, item)

    def send_nowait(self, item: T) -> None:
        """Put ``item`` in the channel now, or raise ``WouldBlock`` if it is full."""
        if not self._core.put(self._token, [item], None):
            full()

    def send_many(self, items: Iterable[T], timeout: float | None = None) -> None:
        """Send every item, in order; ``ChannelTimeout.sent`` says how many went if it times out."""
        batch = list(items)
        deadline = deadline_after(timeout)
        sent = self._core.put(self._token, batch, deadline)
        if sent < len(batch):
            run(self._core, Put(self._core, self._token, batch, sent), deadline, tried=True)

    async def asend(self, item: T, timeout: float | None = None) -> None:
        """``send`` for asyncio: waits on the event loop, never blocking it."""
        if timeout is None and self._send_now(item):
            return
        await arun(self._core, Put(self._core, self._token, [item]), deadline_after(timeout))

    async def asend_many(self, items: Iterable[T], timeout: float | None = None) -> None:
        """``send_many`` for asyncio."""
        batch = list(items)
        await arun(self._core, Put(self._core, self._token, batch), deadline_after(timeout))

    def clone(self) -> ThreadSender[T]:
        """Open another counted sender handle, for another producer."""
        return ThreadSender(self._core, self._core.clone(self._token))

    def close(self) -> None:
        """Close this handle; closing twice counts once. The last close ends the channel."""
        self._core.close_sender(self._token)

    @property
    def closed(self) -> bool:
        """Whether this handle has been closed."""
        return not self._core.sender_open(self._token)

    def stats(self) -> ChannelStats:
        """A snapshot of the channel's counts (see ``ChannelStats``)."""
        return self._core.stats()

    def join(self, timeout: float | None = None) -> None:
        """Wait until every item sent so far has been marked done (``joinable=True``)."""
        core = self._core
        deadline_after(timeout)  # checks it
        if not core.join(timeout):
            raise ChannelTimeout(
                f"{core.unfinished()} item(s) were not marked done before the timeout"
            )

    def __reduce__(self) -> NoReturn:
        cannot_cross("a thread channel's sender handle cannot be pickled")

    def __del__(self, _warn: Callable[..., object] = warnings.warn) -> None:
        """Warn if the handle goes unclosed: its channel would never end."""
        core = getattr(self, "_core", None)
        if core is None or self._token not in core.senders:
            return
        _warn(
            f"sender handle {self._token:#x} of channel {core!r} was garbage-collected "
            "without being closed: the channel stays open for its receivers until every "
            "sender handle is closed, so they will never see its end (close the handle, "
            "or use it in a 'with' block)",
            ResourceWarning,
            2,
            self,
        )

    def __repr__(self) -> str:
        return (
            f"<Sender {self._token:#x} of {self._core!r} ({'closed' if self.closed else 'open'})>"
        )


@final
class ThreadReceiver(Closing, Generic[T]):
    """The receiving half of a thread channel; ``Receiver[T]``. Safe from many threads."""

    __slots__ = ("__weakref__", "_core")

    def __init__(self, core: ThreadCore) -> None:
        self._core = core

    def recv(self, timeout: float | None = None) -> T:
        """Return the next item: the very object that was sent.

        Raises:
            EndOfChannel: every sender handle is closed and every item was received.
            ChannelTimeout: nothing arrived within ``timeout`` seconds.
            ChannelClosed: this receiver was closed (also while waiting).
        """
        core = self._core
        if timeout is None and core.receiver_open:
            if core.fast_take:
                try:
                    item = core.items.popleft()
                except IndexError:
                    pass
                else:
                    next(core.received)
                    if core.watch_take:
                        core.after_take()
                    return cast(T, item)
            elif (item := core.take_one()) is not NOTHING:
                return cast(T, item)
        job = Take(partial(self._take, 1))
        run(core, job, deadline_after(timeout))
        return job.got[0]

    def recv_nowait(self) -> T:
        """Return the next item if one is ready now, else raise ``WouldBlock``."""
        got = self._take(1, None)
        if not got:
            nothing_ready()
        return got[0]

    def recv_many(self, max_items: int, timeout: float | None = None) -> list[T]:
        """Wait like ``recv`` for an item, then return every ready item up to ``max_items``."""
        job = Take(partial(self._take, _batch_size(max_items)))
        run(self._core, job, deadline_after(timeout))
        return job.got

    def recv_many_nowait(self, max_items: int) -> list[T]:
        """Every ready item up to ``max_items``, or ``WouldBlock`` if none is ready."""
        got = self._take(_batch_size(max_items), None)
        if not got:
            nothing_ready()
        return got

    async def arecv(self, timeout: float | None = None) -> T:
        """``recv`` for asyncio: waits on the event loop. Cancelled, it took no item."""
        core = self._core
        if timeout is None and core.receiver_open:
            if core.fast_take:
                try:
                    item = core.items.popleft()
                except IndexError:
                    pass
                else:
                    next(core.received)
                    if core.watch_take:
                        core.after_take()
                    return cast(T, item)
            elif (item := core.take_one()) is not NOTHING:
                return cast(T, item)
        job = Take(partial(self._take, 1))
        await arun(core, job, deadline_after(timeout))
        return job.got[0]

    async def arecv_many(self, max_items: int, timeout: float | None = None) -> list[T]:
        """``recv_many`` for asyncio."""
        job = Take(partial(self._take, _batch_size(max_items)))
        await arun(self._core, job, deadline_after(timeout))
        return job.got

    def _take(self, size: int, deadline: float | None) -> list[T]:
        if not self._core.receiver_open:
            closed_receiver()
        return cast("list[T]", self._core.take(size, deadline))

    def fileno(self) -> int:
        """A descriptor readable while an item (or the end) is ready, for ``selectors``."""
        fd = self._core.ready_fd(False)
        if fd is None:  # pragma: no cover (a receiver always has one)
            raise ChannelError("this channel has no descriptor to wait on")
        return fd

    def stats(self) -> ChannelStats:
        """A snapshot of the channel's counts (see ``ChannelStats``)."""
        return self._core.stats()

    def task_done(self) -> None:
        """Mark the item taken longest ago, and not yet marked, as done (``joinable=True``)."""
        self._core.task_done()

    def __iter__(self) -> Iterator[T]:
        """Yield items until the end of the channel."""
        core = self._core
        items, received = core.items, core.received
        while True:
            if core.receiver_open:
                if core.fast_take:
                    try:
                        item = items.popleft()
                    except IndexError:
                        pass
                    else:
                        next(received)
                        if core.watch_take:
                            core.after_take()
                        yield cast(T, item)
                        continue
                elif (item := core.take_one()) is not NOTHING:
                    yield cast(T, item)
                    continue
            try:
                item = self.recv()
            except EndOfChannel:
                return
            yield item

    def __aiter__(self) -> AsyncIterator[T]:
        """Yield items to ``async for`` until the end of the channel."""
        return aiterate(self)

    def close(self) -> None:
        """Stop receiving; a ``recv`` waiting in another thread raises ``ChannelClosed``."""
        self._core.close_receiver()

    @property
    def closed(self) -> bool:
        """Whether this receiver was closed."""
        return not self._core.receiver_open

    def __reduce__(self) -> NoReturn:
        cannot_cross("a thread channel's receiver cannot be pickled")

    def __repr__(self) -> str:
        return f"<Receiver of {self._core!r}{' (closed)' if self.closed else ''}>"
