"""``ThreadChannel``: both halves of a ``thread`` channel, and the options it refuses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import ClassVar, Generic, Never, NoReturn, TypeVar, final

from ..._config import check_maxsize
from ..._engine.contract import ChannelStats
from ..._engine.handles import Closing
from ..._errors import ConfigError
from ..._protocols import Receiver, Sender
from ..._registry import Features
from .core import FIRST, ThreadCore, cannot_cross
from .handles import ThreadReceiver, ThreadSender

__all__ = ["ThreadChannel"]

# Invariant: a channel both takes and gives T.
T = TypeVar("T")


@final
class ThreadChannel(Closing, Generic[T]):
    """A channel between the threads and asyncio tasks of one process.

    Items are passed by reference: the receiver gets the very object that was
    sent, and nothing is serialized. A sync thread and an asyncio task may share
    it, each waiting in its own way (a blocked thread sleeps until it is woken, a
    task on its event loop). It cannot cross to another process.

    Args:
        maxsize: the most items the channel holds; ``send`` waits while it is full.
            0 (the default) means unbounded.
        joinable: receivers mark each item done with ``task_done()``, and ``join()``
            on the channel or any sender handle waits until every item sent is done.
    """

    __slots__ = ("__weakref__", "_core", "_receiver", "_sender")
    features: ClassVar[Features] = Features(bounded=True)
    #: Options other backends take that a thread channel cannot honour, and why.
    refused: ClassVar[Mapping[str, str]] = {
        key: f"{why}; for channels between processes use a process backend such as 'queue'"
        for key, why in {
            "serializer": "it passes items by reference and serializes nothing",
            "max_message_size": "it serializes nothing, so items have no size to limit",
            "shm_threshold": "it passes items by reference, never through shared memory",
            "spill_dir": "it keeps its items in memory, never in a file",
            "context": "it never reaches another process, so it has no start method",
        }.items()
    }

    def __init__(self, *, maxsize: int = 0, joinable: bool = False, **refused: Never) -> None:
        if refused:  # only untyped callers get here: the type checker refuses them
            key = sorted(refused)[0]
            why = self.refused.get(key, "it takes only maxsize and joinable")
            raise ConfigError(f"a thread channel does not take the option {key!r}: {why}")
        self._core = core = ThreadCore(check_maxsize(maxsize), bool(joinable))
        self._sender = ThreadSender[T](core, FIRST)
        self._receiver = ThreadReceiver[T](core)

    @property
    def sender(self) -> Sender[T]:
        """The channel's own sender handle (the same object every time)."""
        return self._sender

    @property
    def receiver(self) -> Receiver[T]:
        """The channel's receiver (the same object every time)."""
        return self._receiver

    def send(self, item: T, timeout: float | None = None) -> None:
        """Send through the channel's own sender handle (see ``Sender.send``)."""
        self._sender.send(item, timeout)

    def send_nowait(self, item: T) -> None:
        """Send now or raise ``WouldBlock`` (see ``Sender.send_nowait``)."""
        self._sender.send_nowait(item)

    def send_many(self, items: Iterable[T], timeout: float | None = None) -> None:
        """Send a batch through the channel's own handle (see ``Sender.send_many``)."""
        self._sender.send_many(items, timeout)

    async def asend(self, item: T, timeout: float | None = None) -> None:
        """``send`` for asyncio."""
        await self._sender.asend(item, timeout)

    async def asend_many(self, items: Iterable[T], timeout: float | None = None) -> None:
        """``send_many`` for asyncio."""
        await self._sender.asend_many(items, timeout)

    def recv(self, timeout: float | None = None) -> T:
        """Receive the next item (see ``Receiver.recv``)."""
        return self._receiver.recv(timeout)

    def recv_nowait(self) -> T:
        """Receive an item that is ready now or raise ``WouldBlock``."""
        return self._receiver.recv_nowait()

    def recv_many(self, max_items: int, timeout: float | None = None) -> list[T]:
        """Receive a batch (see ``Receiver.recv_many``)."""
        return self._receiver.recv_many(max_items, timeout)

    def recv_many_nowait(self, max_items: int) -> list[T]:
        """Receive the ready items up to ``max_items`` or raise ``WouldBlock``."""
        return self._receiver.recv_many_nowait(max_items)

    async def arecv(self, timeout: float | None = None) -> T:
        """``recv`` for asyncio."""
        return await self._receiver.arecv(timeout)

    async def arecv_many(self, max_items: int, timeout: float | None = None) -> list[T]:
        """``recv_many`` for asyncio."""
        return await self._receiver.arecv_many(max_items, timeout)

    def __iter__(self) -> Iterator[T]:
        """Yield items until the end of the channel."""
        return iter(self._receiver)

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

    def __reduce__(self) -> NoReturn:
        cannot_cross("a thread channel cannot be pickled")

    def __repr__(self) -> str:
        return f"<ThreadChannel {self._core!r} ({'closed' if self.closed else 'open'})>"
