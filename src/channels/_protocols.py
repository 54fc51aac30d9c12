"""The three protocols every backend implements: ``Sender``, ``Receiver`` and ``Channel``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from ._engine.contract import ChannelStats

__all__ = ["Channel", "Closable", "Receiver", "Sender"]

# Invariant: a Channel[T] both takes and gives T.
T = TypeVar("T")
# Contravariant: a Sender only consumes T; a Sender[int] may stand where a Sender[bool] is wanted.
T_contra = TypeVar("T_contra", contravariant=True)
# Covariant: a Receiver only produces T; a Receiver[bool] may stand where a Receiver[int] is wanted.
T_co = TypeVar("T_co", covariant=True)


class Closable(Protocol):
    """Something with ``close()``, which ``with`` and ``async with`` call on exit."""

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def stats(self) -> ChannelStats:
        """A snapshot of the channel's counts, alike on every backend."""
        ...


@runtime_checkable
class Sender(Closable, Protocol[T_contra]):
    """The sending half: one counted handle, the same object in every process it reaches."""

    def send(self, item: T_contra, timeout: float | None = None) -> None:
        """Put ``item`` in the channel, waiting while a bounded channel is full."""
        ...

    def send_nowait(self, item: T_contra) -> None:
        """Put ``item`` in the channel, or raise ``WouldBlock`` if it is full."""
        ...

    def send_many(self, items: Iterable[T_contra], timeout: float | None = None) -> None:
        """Send a batch, serialized whole first; ``ChannelTimeout.sent`` tells how many went."""
        ...

    async def asend(self, item: T_contra, timeout: float | None = None) -> None:
        """``send`` for asyncio."""
        ...

    async def asend_many(self, items: Iterable[T_contra], timeout: float | None = None) -> None:
        """``send_many`` for asyncio."""
        ...

    def join(self, timeout: float | None = None) -> None:
        """Wait until every item sent so far has been marked done (joinable channels)."""
        ...

    def clone(self) -> Sender[T_contra]:
        """Return a new counted sender handle; the channel ends when all are closed."""
        ...

    def close(self) -> None:
        """Close this handle everywhere; idempotent."""
        ...

    @property
    def closed(self) -> bool:
        """Whether this handle is closed (in any process)."""
        ...


@runtime_checkable
class Receiver(Closable, Protocol[T_co]):
    """The receiving half: yields items until every sender has closed."""

    def recv(self, timeout: float | None = None) -> T_co:
        """Return the next item; ``EndOfChannel`` once the channel is closed and drained."""
        ...

    def recv_nowait(self) -> T_co:
        """Return the next item if one is ready now, else raise ``WouldBlock``."""
        ...

    # Batches are lists; a Receiver promises a Sequence, so it stays covariant
    # (a Channel[T], invariant, promises the list).
    def recv_many(self, max_items: int, timeout: float | None = None) -> Sequence[T_co]:
        """Wait for an item, then return every ready item up to ``max_items``."""
        ...

    def recv_many_nowait(self, max_items: int) -> Sequence[T_co]:
        """Every ready item up to ``max_items``, or ``WouldBlock``."""
        ...

    async def arecv(self, timeout: float | None = None) -> T_co:
        """``recv`` for asyncio."""
        ...

    async def arecv_many(self, max_items: int, timeout: float | None = None) -> Sequence[T_co]:
        """``recv_many`` for asyncio."""
        ...

    def __iter__(self) -> Iterator[T_co]:
        """Yield items until the end of the channel."""
        ...

    def __aiter__(self) -> AsyncIterator[T_co]:
        """Yield items to ``async for`` until the end of the channel."""
        ...

    def task_done(self) -> None:
        """Mark the item taken longest ago, and not yet marked, as done (joinable channels)."""
        ...

    def fileno(self) -> int:
        """A descriptor that turns readable when an item may be ready (``ChannelError`` if none)."""
        ...

    def close(self) -> None:
        """Stop this receiver in this process; other receivers go on."""
        ...

    @property
    def closed(self) -> bool:
        """Whether this receiver was closed in this process."""
        ...


@runtime_checkable
class Channel(Sender[T], Receiver[T], Protocol[T]):
    """Both halves at once; ``close()`` closes the sender half, which is what ends the stream."""

    @property
    def sender(self) -> Sender[T]:
        """The channel's own sender handle (the same object every time)."""
        ...

    @property
    def receiver(self) -> Receiver[T]:
        """The channel's receiver."""
        ...

    def recv_many(self, max_items: int, timeout: float | None = None) -> list[T]:
        """Wait for an item, then return every ready item up to ``max_items``, as a list."""
        ...

    def recv_many_nowait(self, max_items: int) -> list[T]:
        """Every ready item up to ``max_items``, as a list, or ``WouldBlock``."""
        ...

    async def arecv_many(self, max_items: int, timeout: float | None = None) -> list[T]:
        """``recv_many`` for asyncio."""
        ...
