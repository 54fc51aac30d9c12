"""``RedisChannel``: a channel in a Redis (or Valkey) server, shared across machines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Never, TypeVar, cast, final

from ..._config import SerializerSpec
from ..._handles import ChannelBase, ReceiverHandle, SenderHandle
from ..._registry import Features
from .core import RedisCore
from .options import REFUSED, check_options, refuse

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

    Args:
        maxsize: the most items waiting in the channel; ``send`` waits while it is
            full (0: unbounded). None: what the channel has (0 for a new one).
        serializer: ``"pickle"`` (default), ``"json"`` or an object with dumps/loads.
        max_message_size: refuse items whose serialized form is larger (bytes).
        address: the server's ``(HOST, PORT)`` or ``"HOST:PORT"``; default
            ``CHANNELS_REDIS_ADDRESS``, else ``localhost:6379``.
        name: the channel's name on the server; None: a new channel of a random name.
        db: the database number.
        username: the ACL user, if any.
        password: the server's password; never printed, logged or pickled.
        socket: a Unix socket path to connect through instead of ``address``.
        tls: connect over TLS (what ``rediss://`` sets).
        tls_ca: the CA certificate file to check the server against.
        tls_cert: a client certificate file, for servers that ask for one.
        tls_key: the client certificate's key file.
        tls_verify: check the server's certificate and host name.
        lease: seconds a process's hold on its handles outlives its last sign of
            life; a sender or receiver that dies is noticed that long after.
        reconnect: seconds the server may stay unreachable before calls raise
            ``ChannelBroken`` (before then they wait, up to their timeout).
        joinable: track ``task_done()`` and ``join()``; None: what the channel has.
        linger: seconds an ended and drained channel's end marker stays, so that
            late receivers see the end and late senders ``ChannelClosed``.
        prefix: the first part of the channel's key names.
    """

    __slots__ = ()
    features: ClassVar[Features] = Features(bounded=True, cross_machine=True)
    #: Options other backends take that a redis channel cannot honour, and why.
    refused: ClassVar[Mapping[str, str]] = REFUSED

    def __init__(
        self,
        *,
        maxsize: int | None = None,
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
        linger: float = 86400.0,
        prefix: str = "channels",
        **refused: Never,
    ) -> None:
        if refused:  # only untyped callers get here: the type checker refuses them
            refuse(refused)
        given = check_options(
            maxsize=maxsize,
            serializer=serializer,
            max_message_size=max_message_size,
            address=address,
            name=name,
            db=db,
            username=username,
            password=password,
            socket=socket,
            tls=tls,
            tls_ca=tls_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_verify=tls_verify,
            lease=lease,
            reconnect=reconnect,
            joinable=joinable,
            linger=linger,
            prefix=prefix,
        )
        self._attach(RedisCore.open(given, with_sender=True))

    @property
    def core(self) -> RedisCore:
        """The channel's core (its non-blocking steps, statistics and acknowledgements)."""
        return cast(RedisCore, self._sender._core)  # pyright: ignore[reportPrivateUsage]

    @staticmethod
    def open_half(
        half: Literal["sender", "receiver"], options: Mapping[str, object]
    ) -> SenderHandle[Any] | ReceiverHandle[Any]:
        """Open one half of a named channel: a counted sender handle, or a receiver only."""
        given = check_options(**cast("dict[str, Any]", options))
        core = RedisCore.open(given, with_sender=half == "sender")
        if half == "sender":
            return SenderHandle(core, core.first_token)
        return ReceiverHandle(core)
