"""``ChannelBase``: both halves of a channel, the object ``open_channel`` returns."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Generic, Protocol, TypeVar

from .._protocols import Receiver, Sender
from .closing import Closing
from .contract import ChannelStats, Core
from .receiver import ReceiverHandle
from .sender import SenderHandle

__all__ = ["ChannelBase", "ReceiverHalf"]

# Invariant here: the concrete classes both take and give T (variance lives on the protocols).
T = TypeVar("T")


class ReceiverHalf(Receiver[T], Protocol[T]):
    """A receiver whose batches are lists, as a ``Channel`` returns them."""

    def recv_many(self, max_items: int, timeout: float | None = None) -> list[T]: ...

    def recv_many_nowait(self, max_items: int) -> list[T]: ...

    async def arecv_many(self, max_items: int, timeout: float | None = None) -> list[T]: ...


class ChannelBase(Closing, Generic[T]):
    """Both halves of a channel: ``Channel[T]``. Every backend's channel class subclasses it.

    A process backend attaches its core (``_attach``), which gives the engine's
    handles; a backend with handles of its own attaches them (``_attach_halves``).
    ``close()`` closes the sender half, which ends the stream once every clone is
    closed too; the receiver half stays usable to drain what was sent.
    """

    __slots__ = ("__weakref__", "_receiver", "_sender")

    _sender: Sender[T]
    _receiver: ReceiverHalf[T]

    def _attach(self, core: Core) -> None:
        self._attach_halves(SenderHandle[T](core, core.first_token), ReceiverHandle[T](core))

    def _attach_halves(self, sender: Sender[T], receiver: ReceiverHalf[T]) -> None:
        self._sender = sender
        self._receiver = receiver

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

    def __getstate__(self) -> tuple[Sender[T], ReceiverHalf[T]]:
        return (self._sender, self._receiver)

    def __setstate__(self, state: tuple[Sender[T], ReceiverHalf[T]]) -> None:
        self._sender, self._receiver = state

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        core = getattr(self._sender, "_core", None)  # every backend's handles keep one
        return f"<{type(self).__name__} {core!r} ({state})>"
