"""``manager``: a queue held by a manager server, reachable from other machines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypeVar, cast, final

from ..._config import ContextSpec, SerializerSpec
from ..._engine.channel import ChannelBase
from ..._engine.receiver import ReceiverHandle
from ..._engine.sender import SenderHandle
from ..._registry import Features
from .core import ManagerCore
from .manager import ChannelManager
from .options import ManagerOptions

__all__ = ["ManagerChannel"]

T = TypeVar("T")


@final
class ManagerChannel(ChannelBase[T]):
    """A channel whose items wait in a ``multiprocessing`` manager server.

    With no ``address`` and no ``manager``, it starts a private manager process
    that stops when this channel (with every handle to it) is garbage collected
    in the creating process, or when that process ends, however it ends (a
    SIGKILL included); it listens on a socket that leaves no file. With ``address`` it
    joins a server that is already running (``channels serve``, or a
    ``ChannelManager``), on this machine or another.

    Unlike local channels, it can be pickled at any time (sent through another
    channel, say), and the pickle never holds the authkey: the receiving process
    needs the key itself (``authkey=`` where it opens the channel, or
    ``CHANNELS_AUTHKEY``; the children that multiprocessing starts share their
    parent's key).

    A channel opened by name is shared: each open of the name takes a sender
    handle of its own, and the channel ends when every handle is closed. So a
    process that only receives closes its sender half right after opening
    (``ch.sender.close()``) and then iterates. Open the name in the producers
    first (or keep one handle open in a process that closes it once they have
    opened theirs): if the consumer's handle is the only one, closing it ends the
    channel at once. A name whose channel ended and was drained names a fresh
    channel at its next open; one that ended with items left still gives them
    out to a late opener, then ``EndOfChannel``. ``open_sender`` and
    ``open_receiver`` on ``manager://HOST:PORT/NAME`` open one half only: a
    counted sender handle (``ChannelClosed`` once the channel has ended), or a
    receiver that holds no handle and so needs no ``ch.sender.close()``.

    Its options are ``ManagerOptions``: ``maxsize``, ``context``, ``serializer``,
    ``max_message_size``, ``address``, ``authkey``, ``name``, ``manager`` and
    ``joinable``.
    """

    __slots__ = ()
    features: ClassVar[Features] = Features(bounded=True, cross_machine=True)
    options: ClassVar[type[ManagerOptions]] = ManagerOptions

    def __init__(
        self,
        *,
        maxsize: int = 0,
        context: ContextSpec = None,
        serializer: SerializerSpec = None,
        max_message_size: int | None = None,
        address: tuple[str, int] | str | None = None,
        authkey: bytes | str | None = None,
        name: str | None = None,
        manager: ChannelManager | None = None,
        joinable: bool = False,
    ) -> None:
        self._attach(ManagerCore.open(ManagerOptions.given(locals())))

    @staticmethod
    def open_half(
        half: Literal["sender", "receiver"], options: Mapping[str, object]
    ) -> SenderHandle[Any] | ReceiverHandle[Any]:
        """One half of a named channel on a running server: ``open_sender``, ``open_receiver``.

        A sender is one counted handle, refused (``ChannelClosed``) on a channel
        that has ended; a receiver holds no handle, and one that comes before any
        sender makes the channel, which then waits for its first sender.
        """
        core = ManagerCore.open(ManagerOptions(**cast("dict[str, Any]", options)), half=half)
        if half == "sender":
            return SenderHandle(core, core.first_token)
        return ReceiverHandle(core)
