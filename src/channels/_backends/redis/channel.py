"""``RedisChannel``: a channel in a Redis (or Valkey) server, shared across machines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypeVar, cast, final

from ..._config import ContextSpec, SerializerSpec
from ..._engine.channel import ChannelBase
from ..._engine.receiver import ReceiverHandle
from ..._engine.sender import SenderHandle
from ..._registry import Features
from .core import RedisCore
from .options import RedisOptions

__all__ = ["RedisChannel"]

T = TypeVar("T")


@final
class RedisChannel(ChannelBase[T]):
    """A channel kept in a Redis stream, joined by name from any process on any machine.

    Every process that opens the same server and name joins the same channel,
    with a sender handle of its own (``channels.open_sender`` and
    ``open_receiver`` open only one half). Handles pickle to any process at any
    time; the pickle never holds the password, so the receiving process needs
    it itself: a forked child inherits it, others read ``CHANNELS_REDIS_PASSWORD``.

    Delivery is exactly once while nobody crashes, and at least once when a
    receiver dies: the items it took and had not acknowledged (it acknowledges
    when it takes the next item, closes, exits, or calls ``task_done()`` on a
    joinable channel) go to another receiver once its lease lapses.

    Its options are ``RedisOptions``: where the server is (``address`` or
    ``socket``, ``db``, ``username``, ``password``, ``tls`` and its files), the
    channel (``name``, ``prefix``, ``maxsize``, ``joinable``, ``linger``), how
    long a process's claims last (``lease``, ``reconnect``), and the codec
    (``serializer``, ``max_message_size``); ``context`` is only checked.
    """

    __slots__ = ()
    features: ClassVar[Features] = Features(bounded=True, cross_machine=True)
    options: ClassVar[type[RedisOptions]] = RedisOptions

    def __init__(
        self,
        *,
        maxsize: int | None = None,
        context: ContextSpec = None,
        serializer: SerializerSpec = None,
        max_message_size: int | None = None,
        address: tuple[str, int] | str | None = None,
        name: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        socket: str | None = None,
        tls: bool = False,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls_verify: bool = True,
        lease: float = 10.0,
        reconnect: float = 30.0,
        joinable: bool | None = None,
        linger: float | None = None,
        prefix: str = "channels",
    ) -> None:
        given = RedisOptions.given(locals())
        self._attach(RedisCore.open(given.settings(), with_sender=True))

    @property
    def core(self) -> RedisCore:
        """The channel's core (its non-blocking steps, statistics and acknowledgements)."""
        sender = cast("SenderHandle[T]", self._sender)
        return cast(RedisCore, sender._core)  # pyright: ignore[reportPrivateUsage]

    @staticmethod
    def open_half(
        half: Literal["sender", "receiver"], options: Mapping[str, object]
    ) -> SenderHandle[Any] | ReceiverHandle[Any]:
        """Open one half of a named channel: a counted sender handle, or a receiver only."""
        given = RedisOptions(**cast("dict[str, Any]", options)).settings()
        core = RedisCore.open(given, with_sender=half == "sender")
        if half == "sender":
            return SenderHandle(core, core.first_token)
        return ReceiverHandle(core)
