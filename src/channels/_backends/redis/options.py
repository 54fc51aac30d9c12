"""A redis channel's options, each checked once, before the server is reached.

``RedisOptions`` declares them once; ``settings()`` checks what goes together
and resolves them into ``Settings``, what the core keeps. An option the channel
cannot honour is refused with ``ConfigError`` at the call that gave it, never
accepted and then ignored: TLS settings without TLS, a Unix socket beside an
address or under TLS. ``context`` is taken and checked as on every process
backend: a redis channel works under every start method.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from ..._codec.serializers import Serializer, resolve_serializer
from ..._config import (
    ContextSpec,
    Options,
    SerializerSpec,
    check_maxsize,
    check_message_limit,
)
from ..._contexts import resolve_context
from ..._errors import ConfigError
from .connection import Server, import_redis, parse_address, remember_password

__all__ = ["RedisOptions", "Settings"]


@dataclass(frozen=True, kw_only=True)
class RedisOptions(Options):
    """What a redis channel is opened with.

    Attributes:
        maxsize: the most items waiting in the channel; ``send`` waits while it is
            full (0: unbounded). None: what the channel has (0 for a new one).
        context: the start method (or context) the channel's processes use; a
            redis channel works under every one, so this only checks the name.
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
            late receivers see the end and late senders ``ChannelClosed``; None: what
            the channel has (a day for a new one). Set when the channel is made: a
            sender that asks for another value is refused with ``ConfigError``.
        prefix: the first part of the channel's key names.
    """

    maxsize: int | None = None
    context: ContextSpec = None
    serializer: SerializerSpec = None
    max_message_size: int | None = None
    address: tuple[str, int] | str | None = None
    name: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    socket: str | None = None
    tls: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_verify: bool = True
    lease: float = 10.0
    reconnect: float = 30.0
    joinable: bool | None = None
    linger: float | None = None
    prefix: str = "channels"

    def check(self) -> None:
        resolve_context(self.context)

    def settings(self) -> Settings:
        """Check every option (``ConfigError`` names the first bad one); keep the password
        in this process only (see ``connection``)."""
        return _settings(self)


@dataclass(frozen=True)
class Settings:
    """The checked options: where the channel is, what it is called, how it behaves."""

    server: Server
    name: str
    prefix: str
    maxsize: int | None
    joinable: bool | None
    serializer: Serializer
    max_message_size: int | None
    lease: float
    reconnect: float
    linger: float | None


def _settings(options: RedisOptions) -> Settings:
    """Check every option (``ConfigError`` names the first bad one); remember the password.

    The password stays in this process only (see ``connection``): it is no part
    of what is returned, so nothing that prints or pickles the options shows it.
    """
    size = None if options.maxsize is None else check_maxsize(options.maxsize)
    codec = resolve_serializer(options.serializer)
    limit = check_message_limit(options.max_message_size)
    _positive("lease", options.lease)
    _positive("reconnect", options.reconnect)
    if options.linger is not None:
        _positive("linger", options.linger)
    if options.name is not None and (not isinstance(options.name, str) or not options.name):
        raise ConfigError(f"a channel name is a non-empty string, not {options.name!r}")
    if not isinstance(options.prefix, str) or not options.prefix:
        raise ConfigError(f"a key prefix is a non-empty string, not {options.prefix!r}")
    if isinstance(options.db, bool) or not isinstance(options.db, int) or options.db < 0:
        raise ConfigError(f"db is a database number >= 0, not {options.db!r}")
    if options.joinable is not None and not isinstance(options.joinable, bool):
        raise ConfigError(f"joinable is True or False, not {options.joinable!r}")
    _check_transport(
        address=options.address,
        socket=options.socket,
        tls=options.tls,
        tls_ca=options.tls_ca,
        tls_cert=options.tls_cert,
        tls_key=options.tls_key,
        tls_verify=options.tls_verify,
    )
    import_redis()
    host, port = ("localhost", 0) if options.socket else parse_address(options.address)
    server = Server(
        host=host,
        port=port,
        socket=options.socket,
        db=options.db,
        username=options.username,
        tls=bool(options.tls),
        tls_ca=options.tls_ca,
        tls_cert=options.tls_cert,
        tls_key=options.tls_key,
        tls_verify=bool(options.tls_verify),
    )
    remember_password(server, options.password)
    return Settings(
        server=server,
        name=options.name or f"anon-{secrets.token_hex(8)}",
        prefix=options.prefix,
        maxsize=size,
        joinable=options.joinable,
        serializer=codec,
        max_message_size=limit,
        lease=options.lease,
        reconnect=options.reconnect,
        linger=options.linger,
    )


def _check_transport(
    *,
    address: object,
    socket: str | None,
    tls: bool,
    tls_ca: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    tls_verify: bool,
) -> None:
    """Refuse a way to reach the server that would leave one of the options unused."""
    if socket and address is not None:
        raise ConfigError("give the server's address or a Unix socket (option socket), not both")
    if socket and tls:
        raise ConfigError(
            "TLS is not available over a Unix socket: connect by address, or leave out tls "
            "(and use redis://, not rediss://)"
        )
    if not tls:
        files = {"tls_ca": tls_ca, "tls_cert": tls_cert, "tls_key": tls_key}
        unused = [key for key, value in files.items() if value is not None]
        unused += [] if tls_verify else ["tls_verify"]
        if unused:
            raise ConfigError(
                f"the option {unused[0]!r} applies only over TLS: use a rediss:// URL or tls=True"
            )


def _positive(option: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{option} is a number of seconds > 0, not {value!r}")
