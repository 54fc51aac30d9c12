"""A redis channel's options, each checked once, before the server is reached.

An option the channel cannot honour is refused with ``ConfigError`` at the call
that gave it, never accepted and then ignored: ``context`` (handles reach
processes of any start method, so there is none to choose), TLS settings
without TLS, a Unix socket beside an address or under TLS.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

from ..._config import SerializerSpec, check_maxsize, check_message_limit
from ..._errors import ConfigError
from ..._serialize import Serializer, resolve_serializer
from .connection import Server, import_redis, parse_address, remember_password

__all__ = ["REFUSED", "Options", "check_options", "refuse"]

#: Options other backends take that a redis channel cannot honour, and why.
REFUSED: Mapping[str, str] = {
    "context": (
        "its handles reach processes of every start method alike, so it has no start "
        "method to choose; start your processes with the context you want"
    ),
}


@dataclass(frozen=True)
class Options:
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
    linger: float


def check_options(
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
) -> Options:
    """Check every option (``ConfigError`` names the first bad one); remember the password.

    The password stays in this process only (see ``connection``): it is no part
    of what is returned, so nothing that prints or pickles the options shows it.
    """
    size = None if maxsize is None else check_maxsize(maxsize)
    codec = resolve_serializer(serializer)
    limit = check_message_limit(max_message_size)
    _positive("lease", lease)
    _positive("reconnect", reconnect)
    _positive("linger", linger)
    if name is not None and (not isinstance(name, str) or not name):
        raise ConfigError(f"a channel name is a non-empty string, not {name!r}")
    if not isinstance(prefix, str) or not prefix:
        raise ConfigError(f"a key prefix is a non-empty string, not {prefix!r}")
    if isinstance(db, bool) or not isinstance(db, int) or db < 0:
        raise ConfigError(f"db is a database number >= 0, not {db!r}")
    if joinable is not None and not isinstance(joinable, bool):
        raise ConfigError(f"joinable is True or False, not {joinable!r}")
    _check_transport(
        address=address,
        socket=socket,
        tls=tls,
        tls_ca=tls_ca,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_verify=tls_verify,
    )
    import_redis()
    host, port = ("localhost", 0) if socket else parse_address(address)
    server = Server(
        host=host,
        port=port,
        socket=socket,
        db=db,
        username=username,
        tls=bool(tls),
        tls_ca=tls_ca,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_verify=bool(tls_verify),
    )
    remember_password(server, password)
    return Options(
        server=server,
        name=name or f"anon-{secrets.token_hex(8)}",
        prefix=prefix,
        maxsize=size,
        joinable=joinable,
        serializer=codec,
        max_message_size=limit,
        lease=lease,
        reconnect=reconnect,
        linger=linger,
    )


def refuse(options: Mapping[str, object]) -> NoReturn:
    """Raise ``ConfigError`` for the first of ``options``, saying why it is not taken."""
    key = sorted(options)[0]
    why = REFUSED.get(key, "it is no option of this backend")
    raise ConfigError(f"a redis channel does not take the option {key!r}: {why}")


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
