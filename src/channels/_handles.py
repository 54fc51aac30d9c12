"""The handles users hold: one implementation of the contract for every backend.

A sender handle is a token in the channel's ledger, so it is one object
wherever it travels: a copy in a child process closes the same handle. A
receiver's closed state belongs to its process. ``ChannelBase`` joins the two
halves into the object ``open_channel`` returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Generic, Self, TypeVar, cast, final

from ._core import Core, deadline_after
from ._errors import ChannelClosed, EndOfChannel, SerializationError
from ._protocols import Receiver, Sender
from ._serialize import PASS_THROUGH, describe, loads, serializer_name

__all__ = ["ChannelBase", "Closing", "ReceiverHandle", "SenderHandle"]

# Invariant here: the concrete classes both take and give T (variance lives on the protocols).
T = TypeVar("T")


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


@final
class SenderHandle(Closing, Generic[T]):
    """A counted sender handle; ``Sender[T]``."""

    __slots__ = ("__weakref__", "_core", "_token")

    def __init__(self, core: Core, token: int) -> None:
        self._core = core
        self._token = token

    def send(self, item: T, timeout: float | None = None) -> None:
        """Put ``item`` in the channel; once this returns the item is in the channel.

        Raises:
            ChannelClosed: this handle is closed or the channel has ended.
            ChannelTimeout: a bounded channel stayed full for ``timeout`` seconds.
            SerializationError: ``item`` cannot be serialized; nothing was sent.
            ChannelBroken: every receiver is gone while the channel is full.
        """
        deadline = None if timeout is None else deadline_after(timeout)
        self._core.send(self._token, self._encode(item), deadline, True)

    def send_nowait(self, item: T) -> None:
        """Put ``item`` in the channel now, or raise ``WouldBlock`` if it is full."""
        self._core.send(self._token, self._encode(item), None, False)

    def _encode(self, item: T) -> bytes | memoryview:
        core = self._core
        serializer = core.serializer
        try:
            data = serializer.dumps(item)
        except PASS_THROUGH:
            raise
        except BaseException as exc:
            raise SerializationError(
                f"cannot send {type(item).__qualname__} with {serializer_name(serializer)}: "
                f"{describe(exc)}"
            ) from exc
        limit = core.max_message_size
        if limit is not None and len(data) > limit:
            raise SerializationError(
                f"an item of type {type(item).__qualname__} serializes to {len(data)} bytes, "
                f"more than max_message_size={limit}; nothing was sent"
            )
        return data

    def clone(self) -> SenderHandle[T]:
        """Open another counted sender handle, for another producer."""
        return SenderHandle(self._core, self._core.clone(self._token))

    def close(self) -> None:
        """Close this handle in every process; closing twice counts once."""
        self._core.close_sender(self._token)

    @property
    def closed(self) -> bool:
        """Whether this handle has been closed, here or in any other process."""
        return not self._core.sender_open(self._token)

    def __reduce__(self) -> tuple[object, ...]:
        return (SenderHandle, (self._core, self._token))

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Sender {self._token:#x} of {self._core!r} ({state})>"


@final
class ReceiverHandle(Closing, Generic[T]):
    """The receiving half; ``Receiver[T]``. Closing it stops only this process's receiver."""

    __slots__ = ("__weakref__", "_closed", "_core")

    def __init__(self, core: Core, closed: bool = False) -> None:
        self._core = core
        self._closed = closed

    def recv(self, timeout: float | None = None) -> T:
        """Return the next item.

        Raises:
            EndOfChannel: every sender handle is closed and every item was received.
            ChannelTimeout: nothing arrived within ``timeout`` seconds.
            ChannelBroken: every process that sent on an open handle died without closing.
            ChannelClosed: this receiver was closed.
            SerializationError: the item could not be deserialized (it is consumed).
        """
        if self._closed:
            raise ChannelClosed("this receiver is closed")
        core = self._core
        deadline = None if timeout is None else deadline_after(timeout)
        return cast(T, loads(core.serializer, core.recv(deadline, True)))

    def recv_nowait(self) -> T:
        """Return the next item if one is ready now, else raise ``WouldBlock``."""
        if self._closed:
            raise ChannelClosed("this receiver is closed")
        core = self._core
        return cast(T, loads(core.serializer, core.recv(None, False)))

    def __iter__(self) -> Iterator[T]:
        """Yield items until the end of the channel."""
        while True:
            try:
                item = self.recv()
            except EndOfChannel:
                return
            yield item

    def close(self) -> None:
        """Stop this receiver in this process; other receivers go on."""
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
