"""What a manager server and its clients share about a connection: addresses, sockets, the hub.

``HUB_ID`` names the hub in every call; an ``Address`` is where a server
listens. The socket helpers work on a ``multiprocessing.connection.Connection``
without taking its descriptor away from it.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Generator, Sequence
from multiprocessing.connection import Connection
from typing import cast

from ..._errors import ConfigError

__all__ = [
    "HUB_ID",
    "Address",
    "borrowed_socket",
    "describe_address",
    "hang_up",
    "parse_address",
    "set_io_timeout",
]

#: The id of the hub in the server's table of shared objects.
HUB_ID = "channels"

#: A server address: (host, port), or the path of a Unix socket.
Address = tuple[str, int] | str


def parse_address(value: object, *, listen: bool = False) -> Address:
    """Check a server address: ``(HOST, PORT)``, ``"HOST:PORT"``, or a Unix socket path.

    A string with a ``/`` is a socket path, one that starts with NUL a Linux
    abstract socket. Port 0 (any free port) is for a server only (``listen``).
    """
    if isinstance(value, str) and ("/" in value or value.startswith("\0")):
        return value
    if isinstance(value, str):
        name, sep, port_text = value.rpartition(":")
        if sep and port_text.isdigit():
            value = (name.strip("[]"), int(port_text))
    pair = cast("Sequence[object]", value) if isinstance(value, tuple | list) else ()
    if len(pair) == 2:
        host, port = pair
        if (
            isinstance(host, str)
            and (host or listen)
            and isinstance(port, int)
            and not isinstance(port, bool)
            and (0 if listen else 1) <= port <= 65535
        ):
            return (host, port)
    ports = "0-65535" if listen else "1-65535"
    raise ConfigError(
        f"a manager address is (HOST, PORT) or 'HOST:PORT' with a port in {ports}, "
        f"or a Unix socket path; not {value!r}"
    )


def set_io_timeout(conn: Connection, seconds: float) -> None:
    """Bound how long one read or write on ``conn`` may block (0: no bound)."""
    whole = int(seconds)
    micros = 0 if not seconds else max(1, int((seconds - whole) * 1e6))
    value = struct.pack("ll", whole, micros)
    with borrowed_socket(conn) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)


@contextlib.contextmanager
def borrowed_socket(conn: Connection) -> Generator[socket.socket]:
    """A socket object over ``conn``'s descriptor, which stays ``conn``'s and stays blocking."""
    sock = socket.socket(fileno=conn.fileno())
    try:
        yield sock
    finally:
        # Wrapping applied socket.getdefaulttimeout(): a timeout there made it non-blocking.
        with contextlib.suppress(OSError):
            sock.setblocking(True)
        sock.detach()


def hang_up(conn: Connection) -> None:
    """Shut a connection down so its reader sees the end; the fd stays its owner's to close."""
    with contextlib.suppress(OSError, ValueError), borrowed_socket(conn) as sock:
        sock.shutdown(socket.SHUT_RDWR)


def describe_address(address: object) -> str:
    """``HOST:PORT`` for TCP, the path of a Unix socket, ``@NAME`` for an abstract one."""
    if isinstance(address, tuple):
        host, port = cast("tuple[object, object]", address)
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    text = str(address)
    return "@" + text[1:] if text.startswith("\0") else text
