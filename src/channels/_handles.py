"""The handles users hold: one implementation of the contract for every backend.

A sender handle is a token in the channel's ledger, so it is one object
wherever it travels: a copy in a child process closes the same handle. A
receiver's closed state belongs to its process. ``ChannelBase`` joins the two
halves into the object ``open_channel`` returns.

A sender handle that only this process can hold (made here, never pickled, not
alive at a fork) and that is garbage-collected unclosed raises
``ResourceWarning``: the channel would stay open for its receivers for good. It
is not closed for the user, since the collection may run in the middle of a
call on the same channel in the same thread.

Every face (blocking, ``*_nowait``, batches, asyncio) is the same loop: try the
core's non-blocking ``put`` or ``take``, and if it did nothing, wait for this
thread's (or task's) turn, pause (``_waiting``, ``_turns``) and try again.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import warnings
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from functools import partial
from types import TracebackType
from typing import Generic, Self, TypeVar, cast, final

from ._codec import OutOfBand, Part, Payload, decode, decode_many, encode_many, encoder, items_in
from ._core import ChannelStats, Core, deadline_after, stores_batches
from ._errors import (
    ChannelError,
    ChannelTimeout,
    ConfigError,
    EndOfChannel,
    SerializationError,
    WouldBlock,
)
from ._policy import closed_receiver, full, nothing_ready
from ._protocols import Receiver, Sender
from ._serialize import PASS_THROUGH, cannot_load, loader
from ._turns import NOW, Turn, may_try_now, take_turn
from ._waiting import apause, astep_anyio, in_asyncio, in_line, pause, turn

__all__ = ["ChannelBase", "Closing", "ReceiverHandle", "SenderHandle"]

# Invariant here: the concrete classes both take and give T (variance lives on the protocols).
T = TypeVar("T")

#: How long a ``*_nowait`` call may wait for a lock another thread or process holds
#: for one item (one preempted while it holds it), before it raises ``WouldBlock``.
NOWAIT_LOCK = 0.005


def _nowait() -> float:
    return time.monotonic() + NOWAIT_LOCK


#: How often ``join`` looks at the count of unfinished items.
JOIN_SLICE = 0.01


def join(core: Core, timeout: float | None) -> None:
    """Wait until ``core`` has no unfinished item (see ``SenderHandle.join``)."""
    deadline = deadline_after(timeout)
    while left := core.unfinished():
        if deadline is not None and time.monotonic() >= deadline:
            raise ChannelTimeout(f"{left} item(s) were not marked done before the timeout")
        time.sleep(JOIN_SLICE)


class _Forks:
    """How many times this process forked (or was forked), counted in both processes.

    A handle made before the last fork may have a copy in the other process, so
    only a handle made since counts as this process's alone. One counter does
    what marking every live handle would, with no set for threads to share.
    """

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count: int = 0

    def forked(self) -> None:
        self.count += 1


_FORKS = _Forks()
os.register_at_fork(after_in_parent=_FORKS.forked, after_in_child=_FORKS.forked)

#: ``SenderHandle._made`` of a handle that another process may hold too.
_SHARED = -1


async def _asend_anyio(core: Core, token: int, data: list[Payload], deadline: float | None) -> None:
    """``asend_many`` under another event loop (trio), through anyio."""
    sent = 0
    while True:
        rest = data[sent:] if sent else data
        sent += await astep_anyio(core, partial(core.put, token, rest), deadline)
        if sent >= len(data):
            return
        await apause(core, True, deadline, sent)


_BYTES = (bytes, memoryview)


def _put_rest(
    core: Core, token: int, data: list[Payload], sent: int, deadline: float | None
) -> int:
    """Put what is left of a batch; a timeout says how much of the batch went before it."""
    try:
        return core.put(token, data[sent:] if sent else data, deadline)
    except ChannelTimeout as exc:  # a server's reply lost: exc.unsure may have gone too
        raise ChannelTimeout(str(exc), sent=sent, unsure=exc.unsure) from exc


def _batch_size(max_items: object) -> int:
    if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
        raise ConfigError(f"max_items must be a whole number >= 1, not {max_items!r}")
    return max_items


class Closing:
    """``with`` support for anything that has ``close()``: closes on exit, also on an error."""

    __slots__ = ()

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@final
class SenderHandle(Closing, Generic[T]):
    """A counted sender handle; ``Sender[T]``.

    ``shared`` says that other processes may hold the same handle (it came from
    a pickle); otherwise it is this process's alone until it is pickled or the
    process forks, and collecting it unclosed warns (see the module docstring).
    """

    __slots__ = ("__weakref__", "_core", "_encode", "_made", "_token")

    def __init__(self, core: Core, token: int, shared: bool = False) -> None:
        # The fork count when it was made, or _SHARED: set first, __del__ reads it. Token 0
        # names no handle (the channel was over when it was opened): nothing to close.
        self._made = _SHARED if shared or not token else _FORKS.count
        self._core = core
        self._token = token
        self._encode = encoder(core.serializer, core.shm_threshold, core.max_message_size)

    def send(self, item: T, timeout: float | None = None) -> None:
        """Put ``item`` in the channel; once this returns the item is in the channel.

        Raises:
            ChannelClosed: this handle is closed or the channel has ended.
            ChannelTimeout: a bounded channel stayed full for ``timeout`` seconds.
            SerializationError: ``item`` cannot be serialized; nothing was sent.
            ChannelBroken: every receiver is gone while the channel is full.
        """
        data = [self._encode(item)]
        deadline = None if timeout is None else deadline_after(timeout)
        core, token = self._core, self._token
        if core.put(token, data, deadline):
            return
        with turn(core, True, deadline):
            while not core.put(token, data, deadline):
                pause(core, True, deadline)

    def send_nowait(self, item: T) -> None:
        """Put ``item`` in the channel now, or raise ``WouldBlock`` if it is full."""
        data = [self._encode(item)]
        try:
            if not self._core.put(self._token, data, _nowait()):
                full()
        except ChannelTimeout as exc:
            raise WouldBlock("another process holds the channel's lock") from exc

    def send_many(self, items: Iterable[T], timeout: float | None = None) -> None:
        """Send every item of ``items``, in order, in as few transfers as the backend can.

        The whole batch is serialized first: if any item cannot be, nothing is sent.
        On a bounded channel it waits for room as ``send`` does; if ``timeout``
        passes first, ``ChannelTimeout.sent`` says how many items went.
        """
        data = self._encode_many(items)
        deadline = deadline_after(timeout)
        core, token = self._core, self._token
        sent = core.put(token, data, deadline)
        if sent >= len(data):
            return
        with turn(core, True, deadline, sent):
            while True:
                pause(core, True, deadline, sent)
                sent += _put_rest(core, token, data, sent, deadline)
                if sent >= len(data):
                    return

    async def asend(self, item: T, timeout: float | None = None) -> None:
        """``send`` for asyncio: waits without blocking the event loop.

        Cancelled, it either sent the item or did not; the channel stays usable.
        """
        await self._asend_all([self._encode(item)], deadline_after(timeout))

    async def asend_many(self, items: Iterable[T], timeout: float | None = None) -> None:
        """``send_many`` for asyncio."""
        await self._asend_all(self._encode_many(items), deadline_after(timeout))

    async def _asend_all(self, data: list[Payload], deadline: float | None) -> None:
        core, token = self._core, self._token
        if not in_asyncio():
            await _asend_anyio(core, token, data, deadline)
            return
        sent = 0
        if may_try_now(core, True):
            with contextlib.suppress(ChannelTimeout):  # a busy lock: wait for it in turn
                sent = core.put(token, data, NOW)
                if sent >= len(data):
                    return
        turn = await take_turn(core, True, deadline, sent)
        try:
            if not turn.quick:  # every step a round trip: the whole wait on one helper thread
                progress = [sent]
                put = partial(self._put_waiting, data, progress, deadline)
                try:
                    await turn.off_loop(put, deadline)
                except ChannelTimeout as exc:  # out of time while the call was still out
                    exc.sent = max(exc.sent, progress[0])
                    raise
                return
            while True:
                rest = data[sent:] if sent else data
                sent += await turn.step(partial(core.put, token, rest), deadline, sent=sent)
                if sent >= len(data):
                    return
                await turn.ready(deadline, sent)
        finally:
            turn.leave()

    def _put_waiting(
        self,
        data: list[Payload],
        progress: list[int],
        deadline: float | None,
        stop: threading.Event,
    ) -> None:
        """On a helper thread: send what is left of ``data`` (``progress[0]`` of it went),
        waiting for room until ``stop`` is set."""
        core, token = self._core, self._token
        while True:
            sent = progress[0]
            progress[0] += core.put(token, data[sent:] if sent else data, deadline)
            if progress[0] >= len(data) or stop.is_set():
                return
            pause(core, True, deadline, progress[0])
            if stop.is_set():  # its task left: send nothing more for it
                return

    def _encode_many(self, items: Iterable[T]) -> list[Payload]:
        core = self._core
        return encode_many(
            core.serializer, items, core.shm_threshold, core.max_message_size, stores_batches(core)
        )

    def clone(self) -> SenderHandle[T]:
        """Open another counted sender handle, for another producer."""
        return SenderHandle(self._core, self._core.clone(self._token))

    def close(self) -> None:
        """Close this handle in every process; closing twice counts once."""
        self._made = _SHARED  # closed, or tried: nothing to warn about
        self._core.close_sender(self._token)

    @property
    def closed(self) -> bool:
        """Whether this handle has been closed, here or in any other process."""
        return not self._core.sender_open(self._token)

    def stats(self) -> ChannelStats:
        """A snapshot of the channel's counts (see ``ChannelStats``)."""
        return self._core.stats()

    def join(self, timeout: float | None = None) -> None:
        """Wait until every item sent so far has been marked done (``joinable=True``).

        Raises:
            ChannelTimeout: items were still not done after ``timeout`` seconds.
            ChannelBroken: a receiver died holding items it had not marked done
                (local and manager backends: they are lost).
            ChannelError: the channel was not opened with ``joinable=True``.
        """
        join(self._core, timeout)

    def __reduce__(self) -> tuple[object, ...]:
        self._made = _SHARED  # the copy may close it, or keep it open, elsewhere
        self._core.handing_over(self._token)
        return (SenderHandle, (self._core, self._token, True))

    def __del__(
        self, _forks: _Forks = _FORKS, _warn: Callable[..., object] = warnings.warn
    ) -> None:
        """Warn if this process's own handle goes unclosed; no lock, no call, no error."""
        if getattr(self, "_made", _SHARED) != _forks.count:
            return
        try:
            what = f"sender handle {self._token:#x} of channel {self._core!r}"
        except Exception:
            what = "a sender handle"
        message = (
            f"{what} was garbage-collected without being closed: the channel stays open "
            "for its receivers until every sender handle is closed, so they will never "
            "see its end (close the handle, or use it in a 'with' block)"
        )
        _warn(message, ResourceWarning, 2, self)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Sender {self._token:#x} of {self._core!r} ({state})>"


@final
class ReceiverHandle(Closing, Generic[T]):
    """The receiving half; ``Receiver[T]``. Closing it stops only this process's receiver."""

    __slots__ = ("__weakref__", "_closed", "_core", "_held", "_loads")

    def __init__(self, core: Core, closed: bool = False) -> None:
        self._core = core
        self._closed = closed
        self._loads = loader(core.serializer)
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
        if not (self._held or self._closed or in_line(core, False)):
            raw = core.take(1, deadline)
            if raw:
                data = raw[0]
                if isinstance(data, OutOfBand | Part):
                    return cast(T, decode(core.serializer, data))
                try:  # the common case, decoded here at once
                    return cast(T, self._loads(cast(bytes, data)))
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
        core = self._core
        if self._held or not in_line(core, False):
            got = self._take(size, deadline)
            if got:
                return got
        with turn(core, False, deadline, check=self._check_open):
            while True:
                pause(core, False, deadline)
                got = self._take(size, deadline)
                if got:
                    return got

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
        if not in_asyncio():
            return await self._areceive_anyio(size, deadline)
        core = self._core
        if may_try_now(core, False):
            with contextlib.suppress(ChannelTimeout):  # a busy lock: wait for it in turn
                raw = core.take(size, NOW)
                if raw:
                    return self._decoded(raw)
        turn = await take_turn(core, False, deadline)
        try:
            if self._held:  # the call whose turn it was left items here: they come first
                return self._take(size, deadline)
            if not turn.quick:  # every step a round trip: the whole wait on one helper thread
                take = partial(self._take_waiting, size, deadline)
                return self._decoded(await turn.off_loop(take, deadline, self._held.extend))
            while True:
                got = await self._atry(turn, size, deadline)
                if got:
                    return got
                await turn.ready(deadline)
        finally:
            turn.leave()

    def _take_waiting(
        self, size: int, deadline: float | None, stop: threading.Event
    ) -> list[Payload]:
        """On a helper thread: take up to ``size`` items, waiting until ``stop`` is set."""
        core = self._core
        while True:
            self._check_open()
            raw = core.take(size, deadline)
            if raw or stop.is_set():
                return raw
            pause(core, False, deadline)
            if stop.is_set():  # its task left: take nothing more for it
                return []

    async def _atry(self, turn: Turn, size: int, deadline: float | None) -> list[T]:
        """With this task's turn on the channel: up to ``size`` items ready now; [] if none is."""
        if self._closed:
            closed_receiver()
        if self._held:  # a call that left before its take returned kept items here
            return self._take(size, deadline)
        raw = await turn.step(partial(self._core.take, size), deadline, self._held.extend)
        return self._decoded(raw) if raw else []

    async def _areceive_anyio(self, size: int, deadline: float | None) -> list[T]:
        """``_areceive`` under another event loop (trio), through anyio."""
        core = self._core
        while True:
            if self._closed:
                closed_receiver()
            raw = await astep_anyio(core, partial(core.take, size), deadline)
            if raw:
                return self._decoded(raw)
            await apause(core, False, deadline)

    def _take_now(self, size: int) -> list[T]:
        try:
            return self._take(size, _nowait())
        except ChannelTimeout as exc:
            raise WouldBlock("another process holds the channel's lock") from exc

    def _take(self, size: int, deadline: float | None) -> list[T]:
        """Up to ``size`` items ready now, deserialized; [] if none is.

        Items held from before are handed over first, on their own.
        """
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
                return self._decoded(raw)
        return self._decoded(self._core.take(size, deadline))

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
                    return [cast(T, self._loads(cast(bytes, one)))]
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
        return self._aiterate()

    async def _aiterate(self) -> AsyncIterator[T]:
        while True:
            try:
                item = await self.arecv()
            except EndOfChannel:
                return
            yield item

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


class ChannelBase(Closing, Generic[T]):
    """Both halves of a channel: ``Channel[T]``. Backends subclass it and build a core.

    ``close()`` closes the sender half, which ends the stream once every clone is
    closed too; the receiver half stays usable to drain what was sent.
    """

    __slots__ = ("__weakref__", "_receiver", "_sender")

    _sender: SenderHandle[T]
    _receiver: ReceiverHandle[T]

    def _attach(self, core: Core) -> None:
        self._sender = SenderHandle(core, core.first_token)
        self._receiver = ReceiverHandle(core)

    @property
    def sender(self) -> Sender[T]:
        """The channel's own sender handle (the same object every time)."""
        return self._sender

    @property
    def receiver(self) -> Receiver[T]:
        """The channel's receiver in this process."""
        return self._receiver

    def send(self, item: T, timeout: float | None = None) -> None:
        """Send through the channel's own sender handle (see ``Sender.send``)."""
        self._sender.send(item, timeout)

    def send_nowait(self, item: T) -> None:
        """Send now or raise ``WouldBlock`` (see ``Sender.send_nowait``)."""
        self._sender.send_nowait(item)

    def recv(self, timeout: float | None = None) -> T:
        """Receive the next item (see ``Receiver.recv``)."""
        return self._receiver.recv(timeout)

    def recv_nowait(self) -> T:
        """Receive an item that is ready now or raise ``WouldBlock``."""
        return self._receiver.recv_nowait()

    def send_many(self, items: Iterable[T], timeout: float | None = None) -> None:
        """Send a batch through the channel's own handle (see ``Sender.send_many``)."""
        self._sender.send_many(items, timeout)

    def recv_many(self, max_items: int, timeout: float | None = None) -> list[T]:
        """Receive a batch (see ``Receiver.recv_many``)."""
        return self._receiver.recv_many(max_items, timeout)

    def recv_many_nowait(self, max_items: int) -> list[T]:
        """Receive the ready items up to ``max_items`` or raise ``WouldBlock``."""
        return self._receiver.recv_many_nowait(max_items)

    async def asend(self, item: T, timeout: float | None = None) -> None:
        """``send`` for asyncio."""
        await self._sender.asend(item, timeout)

    async def asend_many(self, items: Iterable[T], timeout: float | None = None) -> None:
        """``send_many`` for asyncio."""
        await self._sender.asend_many(items, timeout)

    async def arecv(self, timeout: float | None = None) -> T:
        """``recv`` for asyncio."""
        return await self._receiver.arecv(timeout)

    async def arecv_many(self, max_items: int, timeout: float | None = None) -> list[T]:
        """``recv_many`` for asyncio."""
        return await self._receiver.arecv_many(max_items, timeout)

    def __aiter__(self) -> AsyncIterator[T]:
        """Yield items to ``async for`` until the end of the channel."""
        return aiter(self._receiver)

    def fileno(self) -> int:
        """The receiver's descriptor (see ``Receiver.fileno``)."""
        return self._receiver.fileno()

    def stats(self) -> ChannelStats:
        """A snapshot of the channel's counts (see ``ChannelStats``)."""
        return self._receiver.stats()

    def task_done(self) -> None:
        """Mark an item done (see ``Receiver.task_done``)."""
        self._receiver.task_done()

    def join(self, timeout: float | None = None) -> None:
        """Wait until every item sent has been marked done (see ``Sender.join``)."""
        self._sender.join(timeout)

    def __iter__(self) -> Iterator[T]:
        """Yield items until the end of the channel."""
        return iter(self._receiver)

    def clone(self) -> Sender[T]:
        """Open another counted sender handle, for another producer."""
        return self._sender.clone()

    def close(self) -> None:
        """Close the channel's sender half; the stream ends when every clone is closed too."""
        self._sender.close()

    @property
    def closed(self) -> bool:
        """Whether the channel's sender half is closed."""
        return self._sender.closed

    def __getstate__(self) -> tuple[SenderHandle[T], ReceiverHandle[T]]:
        return (self._sender, self._receiver)

    def __setstate__(self, state: tuple[SenderHandle[T], ReceiverHandle[T]]) -> None:
        self._sender, self._receiver = state

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        # The core is shared within this module, not private to SenderHandle.
        core = self._sender._core  # pyright: ignore[reportPrivateUsage]
        return f"<{type(self).__name__} {core!r} ({state})>"
