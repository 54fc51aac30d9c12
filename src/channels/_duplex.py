"""``duplex[A, B](spec)``: two endpoints for request and response between two processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar, Unpack, final, overload

from ._engine.closing import Closing
from ._engine.contract import ChannelStats
from ._open import ChannelOptions, open_channel
from ._protocols import Channel, Receiver, Sender

__all__ = ["Endpoint", "duplex"]

# Contravariant: an endpoint only consumes what it sends.
S_contra = TypeVar("S_contra", contravariant=True)
# Covariant: an endpoint only produces what it receives.
R_co = TypeVar("R_co", covariant=True)
# Invariant: the two types as written at duplex[A, B].
A = TypeVar("A")
B = TypeVar("B")


@final
class Endpoint(Closing, Generic[S_contra, R_co]):
    """One end of a two-way link: a ``Sender[S]`` and a ``Receiver[R]`` in one object.

    ``close()`` closes this end's sending handle, like shutting down the write
    side of a socket: the other end's stream ends, and this end can still read
    what the other end sends until it closes in turn.
    """

    __slots__ = ("_inbox", "_out")

    def __init__(self, out: Sender[S_contra], inbox: Receiver[R_co]) -> None:
        self._out = out
        self._inbox = inbox

    def send(self, item: S_contra, timeout: float | None = None) -> None:
        """Send ``item`` to the other end."""
        self._out.send(item, timeout)

    def send_nowait(self, item: S_contra) -> None:
        """Send ``item`` now, or raise ``WouldBlock``."""
        self._out.send_nowait(item)

    def send_many(self, items: Iterable[S_contra], timeout: float | None = None) -> None:
        """Send a batch to the other end."""
        self._out.send_many(items, timeout)

    async def asend(self, item: S_contra, timeout: float | None = None) -> None:
        """``send`` for asyncio."""
        await self._out.asend(item, timeout)

    async def asend_many(self, items: Iterable[S_contra], timeout: float | None = None) -> None:
        """``send_many`` for asyncio."""
        await self._out.asend_many(items, timeout)

    def recv(self, timeout: float | None = None) -> R_co:
        """Receive the next item from the other end."""
        return self._inbox.recv(timeout)

    def recv_nowait(self) -> R_co:
        """Receive an item that is ready now, or raise ``WouldBlock``."""
        return self._inbox.recv_nowait()

    def recv_many(self, max_items: int, timeout: float | None = None) -> Sequence[R_co]:
        """Receive a batch from the other end."""
        return self._inbox.recv_many(max_items, timeout)

    def recv_many_nowait(self, max_items: int) -> Sequence[R_co]:
        """Receive the ready items up to ``max_items``, or raise ``WouldBlock``."""
        return self._inbox.recv_many_nowait(max_items)

    async def arecv(self, timeout: float | None = None) -> R_co:
        """``recv`` for asyncio."""
        return await self._inbox.arecv(timeout)

    async def arecv_many(self, max_items: int, timeout: float | None = None) -> Sequence[R_co]:
        """``recv_many`` for asyncio."""
        return await self._inbox.arecv_many(max_items, timeout)

    def __aiter__(self) -> AsyncIterator[R_co]:
        """Yield what the other end sends until it closes."""
        return aiter(self._inbox)

    def fileno(self) -> int:
        """The receiving side's descriptor (see ``Receiver.fileno``)."""
        return self._inbox.fileno()

    def stats(self) -> ChannelStats:
        """The receiving side's channel counts."""
        return self._inbox.stats()

    def task_done(self) -> None:
        """Mark an item received from the other end as done."""
        self._inbox.task_done()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the other end marked done everything this end sent."""
        self._out.join(timeout)

    def request(self, item: S_contra, timeout: float | None = None) -> R_co:
        """Send ``item`` and wait for the next item back (one request, one response)."""
        self._out.send(item, timeout)
        return self._inbox.recv(timeout)

    def __iter__(self) -> Iterator[R_co]:
        """Yield what the other end sends until it closes."""
        return iter(self._inbox)

    def clone(self) -> Sender[S_contra]:
        """Another counted handle for sending to the other end."""
        return self._out.clone()

    def close(self) -> None:
        """Stop sending: the other end's iteration stops once it has read everything."""
        self._out.close()

    @property
    def closed(self) -> bool:
        """Whether this end's sending handle is closed."""
        return self._out.closed


@final
class DuplexOpener(Generic[A, B]):
    """``duplex[A, B]``: call it to open the pair."""

    __slots__ = ()

    def __call__(
        self, spec: str | None = None, /, **options: Unpack[ChannelOptions]
    ) -> tuple[Endpoint[A, B], Endpoint[B, A]]:
        """Open two channels of ``spec`` and return the two ends."""
        forward: Channel[A] = open_channel(spec, **options)
        backward: Channel[B] = open_channel(spec, **options)
        return (
            Endpoint(forward.sender, backward.receiver),
            Endpoint(backward.sender, forward.receiver),
        )


_OPENER: DuplexOpener[Any, Any] = DuplexOpener()


@final
class _Duplex:
    """Open a two-way link: ``client, server = duplex[Request, Response]("pipe")``.

    ``client`` sends ``Request`` and receives ``Response``; ``server`` the other
    way round. Each end can go to its own process.
    """

    __slots__ = ()

    @overload
    def __getitem__(self, types: tuple[type[A], type[B]], /) -> DuplexOpener[A, B]: ...

    @overload
    def __getitem__(self, types: object, /) -> DuplexOpener[Any, Any]: ...

    def __getitem__(self, types: object, /) -> DuplexOpener[Any, Any]:
        return _OPENER

    def __call__(
        self, spec: str | None = None, /, **options: Unpack[ChannelOptions]
    ) -> tuple[Endpoint[Any, Any], Endpoint[Any, Any]]:
        """Open a pair whose item types are left to inference."""
        return _OPENER(spec, **options)


duplex: _Duplex = _Duplex()
