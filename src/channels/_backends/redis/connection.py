"""Where a redis channel lives, and the client that reaches it.

A ``Server`` names a server without its credentials: it is what a pickled
handle carries, what errors and log lines print, and the key under which this
process remembers the password it was given. A process that unpickles a handle
finds the password here (a forked child inherits it), else in the environment
variable ``CHANNELS_REDIS_PASSWORD``.

redis-py is imported only when a client is made, so ``import channels`` works
without it; opening a channel without it raises ``ConfigError`` with the
install command.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from ..._errors import ConfigError
from ..._timing import CONNECT_ATTEMPT, SOCKET_TIMEOUT

if TYPE_CHECKING:
    import redis

__all__ = [
    "ENV_ADDRESS",
    "ENV_PASSWORD",
    "INSTALL",
    "Connection",
    "Server",
    "client",
    "connect",
    "import_redis",
    "remember_password",
    "scrub",
]

ENV_PASSWORD = "CHANNELS_REDIS_PASSWORD"
ENV_ADDRESS = "CHANNELS_REDIS_ADDRESS"
INSTALL = "pip install 'typed-channels[redis]'"
DEFAULT_PORT = 6379


class Connection(Protocol):
    """The part of a redis-py connection the core uses: one command and its reply at a time."""

    socket_timeout: float | None
    socket_connect_timeout: float | None

    def send_command(self, *args: bytes | str | int | float) -> None: ...

    def send_packed_command(self, command: list[bytes]) -> None: ...

    def can_read(self, timeout: float = 0) -> bool: ...

    def read_response(self) -> object: ...

    def disconnect(self) -> None: ...


@dataclass(frozen=True)
class Server:
    """A redis server and how to talk to it, credentials left out."""

    host: str
    port: int
    socket: str | None = None
    db: int = 0
    username: str | None = None
    tls: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_verify: bool = True

    def describe(self) -> str:
        """A URL-like name for messages: no password, ever."""
        scheme = "rediss" if self.tls else "redis"
        where = f"unix:{self.socket}" if self.socket else f"{self.host}:{self.port}"
        user = f"{self.username}@" if self.username else ""
        db = f"?db={self.db}" if self.db else ""
        return f"{scheme}://{user}{where}{db}"


def parse_address(address: tuple[str, int] | str | None) -> tuple[str, int]:
    """``(HOST, PORT)`` or ``"HOST:PORT"``; None: ``CHANNELS_REDIS_ADDRESS``, else localhost."""
    if address is None:
        address = os.environ.get(ENV_ADDRESS) or f"localhost:{DEFAULT_PORT}"
    if isinstance(address, str):
        host, sep, digits = address.rpartition(":")
        if not sep:
            host, digits = address, str(DEFAULT_PORT)
        try:
            number = int(digits)
        except ValueError:
            raise ConfigError(f"a redis address is HOST:PORT, not {address!r}") from None
        address = (host.strip("[]"), number)
    if (
        not isinstance(address, tuple)
        or len(address) != 2
        or not isinstance(address[0], str)
        or not isinstance(address[1], int)
    ):
        raise ConfigError(f"a redis address is (HOST, PORT) or 'HOST:PORT', not {address!r}")
    host, port = address
    return (host or "localhost", port or DEFAULT_PORT)


_passwords: dict[Server, str] = {}
_passwords_lock = threading.Lock()


def remember_password(server: Server, password: str | None) -> None:
    """Keep the password given for ``server`` in this process (and its forked children)."""
    if password is not None:
        with _passwords_lock:
            _passwords[server] = password


def password_for(server: Server) -> str | None:
    """The password this process knows for ``server``, if any."""
    with _passwords_lock:
        known = _passwords.get(server)
    return known if known is not None else os.environ.get(ENV_PASSWORD)


def scrub(text: str, server: Server) -> str:
    """``text`` with the server's password, if it somehow appears, masked."""
    secret = password_for(server)
    return text.replace(secret, "***") if secret else text


def import_redis() -> None:
    """Fail with the install command if redis-py is missing."""
    try:
        import redis  # noqa: PLC0415 (optional: imported only when used)
    except ImportError as exc:
        raise ConfigError(f"the redis backend needs redis-py: {INSTALL}") from exc
    del redis


def connect(server: Server) -> Connection:
    """A new, not yet connected, connection to ``server``; it never retries by itself.

    Retrying is left to the core, which knows which calls are safe to repeat
    and how long the caller may wait; it sets the connection's timeouts before
    each use (see ``core``).
    """
    import_redis()
    from redis import connection  # noqa: PLC0415 (optional: imported only when used)
    from redis.backoff import NoBackoff  # noqa: PLC0415
    from redis.retry import Retry  # noqa: PLC0415

    kinds = cast(Any, connection)  # its constructors are untyped
    common: dict[str, Any] = {
        "db": server.db,
        "username": server.username,
        "password": password_for(server),
        "socket_connect_timeout": CONNECT_ATTEMPT,
        "socket_timeout": SOCKET_TIMEOUT,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
        "protocol": 2,  # the replies the core parses: plain arrays
    }
    if server.socket:
        return cast(Connection, kinds.UnixDomainSocketConnection(path=server.socket, **common))
    if server.tls:
        tls = kinds.SSLConnection(
            host=server.host,
            port=server.port,
            ssl_ca_certs=server.tls_ca,
            ssl_certfile=server.tls_cert,
            ssl_keyfile=server.tls_key,
            ssl_cert_reqs="required" if server.tls_verify else "none",
            ssl_check_hostname=server.tls_verify,
            **common,
        )
        return cast(Connection, tls)
    return cast(Connection, kinds.Connection(host=server.host, port=server.port, **common))


def client(server: Server) -> redis.Redis:
    """A plain redis-py client for ``server``, for tools beside the channels (benchmarks)."""
    import_redis()
    import redis  # noqa: PLC0415 (optional: imported only when used)

    return redis.Redis(
        host=server.host,
        port=server.port,
        unix_socket_path=server.socket,
        db=server.db,
        username=server.username,
        password=password_for(server),
        socket_timeout=SOCKET_TIMEOUT,
        ssl=server.tls,
        ssl_ca_certs=server.tls_ca,
        ssl_certfile=server.tls_cert,
        ssl_keyfile=server.tls_key,
        ssl_cert_reqs="required" if server.tls_verify else "none",
        ssl_check_hostname=server.tls_verify,
    )
