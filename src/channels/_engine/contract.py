"""The interface between the handles users hold and the transport that moves bytes.

A *core* is one channel's shared state and transport. It only does what can be
done now: put serialized items, take them, keep the books. Waiting is the
handles' job: one loop for every face that waits (``driving``) and one for
``select``, both over the same two readiness hooks a core
offers: a file descriptor that becomes readable when a retry may succeed
(``ready_fd``), or, where the backend has none, a blocking ``wait`` with a
timeout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .._codec.serializers import Serializer

if TYPE_CHECKING:
    from .._codec.payloads import Payload

__all__ = [
    "ChannelStats",
    "Core",
    "steps_on_loop",
    "stores_batches",
]

#: A serialized item as bytes (see ``_codec.Payload`` for what else a core may move).
Data = bytes | memoryview


@dataclass(frozen=True)
class ChannelStats:
    """A snapshot of a channel, true at one moment (like ``Queue.qsize()``), alike on every backend.

    Attributes:
        waiting: items in the channel that no receiver has taken yet.
        senders: open sender handles (the channel's own, clones, other openers).
        receivers: processes known to receive from the channel.
        sent: items sent so far.
        received: items taken so far.
        unfinished: items not yet marked done (0 unless the channel is joinable).
        ended: whether every sender handle is closed.
        broken: whether the channel broke (a peer died, a server went away).
    """

    waiting: int
    senders: int
    receivers: int
    sent: int
    received: int
    unfinished: int
    ended: bool
    broken: bool


class Core(Protocol):
    """One channel's transport and books, shared by all its handles in a process.

    ``put`` and ``take`` never wait for room or items; their ``deadline`` bounds
    only a brief internal wait (a lock another process holds for one item, a
    server's answer). ``ChannelTimeout`` when it passes.

    Every method may be called from several threads at once. A core whose steps
    an event loop may run itself says so with a class attribute
    ``steps_on_loop = True`` (see ``steps_on_loop``); every other core's
    ``put``, ``take`` and ``wait`` run on helper threads under asyncio.
    """

    @property
    def serializer(self) -> Serializer: ...

    @property
    def max_message_size(self) -> int | None: ...

    @property
    def first_token(self) -> int:
        """The token of the channel's own sender handle."""
        ...

    @property
    def shm_threshold(self) -> int:
        """Buffers this large may come as ``OutOfBand`` payloads (0: never, bytes only)."""
        ...

    def put(self, token: int, items: Sequence[Payload], deadline: float | None) -> int:
        """Put as many of ``items`` as fit now, in order, for handle ``token``; return how many.

        Raises ``ChannelClosed`` or ``ChannelBroken`` if none may be sent.
        """
        ...

    def take(self, max_items: int, deadline: float | None) -> list[Payload]:
        """Take up to ``max_items`` items that are ready now, oldest first; [] if none is.

        Raises ``EndOfChannel`` or ``ChannelBroken`` once nothing is left and none can come.
        """
        ...

    def ready_fd(self, sending: bool) -> int | None:
        """A descriptor that turns readable when a retry of put (or take) may succeed, or None."""
        ...

    def wait(self, sending: bool, timeout: float) -> None:
        """Wait at most ``timeout`` seconds until a retry may succeed; may return early.

        It also looks for dead peers, so a channel whose other side died breaks.
        """
        ...

    def clone(self, token: int) -> int:
        """Open a new sender handle, provided ``token`` is still open."""
        ...

    def close_sender(self, token: int) -> None:
        """Close handle ``token`` everywhere; the last close ends the channel."""
        ...

    def handing_over(self, token: int) -> None:
        """A copy of handle ``token`` is being pickled: maybe for a process that is starting.

        A backend that can tell may count that process as the handle's holder, so
        that its death at start (before it ever sent) counts as a crash.
        """
        ...

    def sender_open(self, token: int) -> bool:
        """Whether handle ``token`` is open."""
        ...

    def close_receiver(self) -> None:
        """Forget this process as a receiver."""
        ...

    def stats(self) -> ChannelStats:
        """A snapshot of the channel's counts and state."""
        ...

    def task_done(self) -> None:
        """Mark the item this process took longest ago, and has not marked, as done.

        ``ChannelError`` if the channel is not joinable or nothing is left to mark.
        """
        ...

    def unfinished(self) -> int:
        """Items sent and not yet marked done; ``ChannelError`` if not joinable.

        Raises ``ChannelBroken`` where the backend knows that some of them were
        lost with a receiver that died holding them.
        """
        ...


def steps_on_loop(core: Core) -> bool:
    """Whether an event loop may try ``core``'s steps itself.

    Such a core's ``put`` and ``take``, given a deadline that has passed, and its
    ``wait`` with a timeout of 0, return or raise ``ChannelTimeout`` at once:
    they take no lock that is not free and do no I/O that can stall (the local
    backends). Any other core's steps may block, so they run off the loop.
    """
    return bool(getattr(type(core), "steps_on_loop", False))


def stores_batches(core: Core) -> bool:
    """Whether ``core`` takes a ``send_many`` as one ``_codec.Batch`` (and gives it back in
    ``_codec.Part`` payloads): the local cores of unbounded channels."""
    return bool(getattr(core, "stores_batches", False))
