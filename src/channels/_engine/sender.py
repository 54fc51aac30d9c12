"""``SenderHandle``: the sending half every process backend hands out.

A sender handle is a token in the channel's ledger, so it is one object
wherever it travels: a copy in a child process closes the same handle.

A sender handle that only this process can hold (made here, never pickled, not
alive at a fork) and that is garbage-collected unclosed raises
``ResourceWarning``: the channel would stay open for its receivers for good. It
is not closed for the user, since the collection may run in the middle of a
call on the same channel in the same thread.

Every face (blocking, ``*_nowait``, batches, asyncio) tries the core's
non-blocking ``put`` once; if it did not send everything, the one loop of
``driving`` runs a ``Put`` job: this thread's (or task's) turn, a pause, a try,
until all of it went.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar, final

from .._codec.payloads import Payload, encode_many, encoder
from .._errors import (
    ChannelTimeout,
    WouldBlock,
)
from .._timing import JOIN_SLICE, NOWAIT_LOCK, deadline_after
from .closing import Closing
from .conditions import full
from .contract import ChannelStats, Core, stores_batches
from .driving import arun, run
from .jobs import Put

__all__ = ["SenderHandle", "join"]

# Invariant here: the concrete classes both take and give T (variance lives on the protocols).
T = TypeVar("T")


def _nowait() -> float:
    return time.monotonic() + NOWAIT_LOCK


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
        if not core.put(token, data, deadline):
            run(core, Put(core, token, data), deadline)

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
        if sent < len(data):
            run(core, Put(core, token, data, sent), deadline, tried=True)

    async def asend(self, item: T, timeout: float | None = None) -> None:
        """``send`` for asyncio: waits without blocking the event loop.

        Cancelled, it either sent the item or did not; the channel stays usable.
        """
        await self._asend_all([self._encode(item)], deadline_after(timeout))

    async def asend_many(self, items: Iterable[T], timeout: float | None = None) -> None:
        """``send_many`` for asyncio."""
        await self._asend_all(self._encode_many(items), deadline_after(timeout))

    async def _asend_all(self, data: list[Payload], deadline: float | None) -> None:
        await arun(self._core, Put(self._core, self._token, data), deadline)

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
