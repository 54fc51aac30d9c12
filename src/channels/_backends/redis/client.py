"""One process's connections to one redis server, and the one retry policy for every call.

A call waits for its reply no longer than its caller's deadline allows: a
stalled server (SIGSTOP, a long fork) cannot hold it past it. A connection that
fails or times out is dropped, so its reply is lost; the core makes every call
safe to repeat after that (see ``core``). Errors are decided here once: a
lost connection is retried until the deadline (``ChannelTimeout``) or until the
server has been gone longer than ``reconnect`` (``ServerUnreachable``); a server
at its memory limit raises ``ServerFull``; refused credentials ``ConfigError``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeVar

from ..._errors import ChannelError, ChannelTimeout, ConfigError, ServerFull, ServerUnreachable
from ..._timing import BLOCK_GRACE, CONNECT_ATTEMPT, REPLY_FLOOR, REPLY_TIMEOUT
from .connection import Connection, Server, connect, scrub

__all__ = ["Arg", "Client", "as_bytes", "as_int", "as_list", "pack"]

log = logging.getLogger(__name__)

R = TypeVar("R")
#: What a script or command takes as an argument.
Arg = bytes | str | int | float


class Client:
    """Connections to ``server`` that calls of this process take in turn."""

    def __init__(self, server: Server, reconnect: float) -> None:
        self.server = server
        self.reconnect = reconnect
        self._idle: list[Connection] = []  # connections no call is using
        self._idle_lock = threading.Lock()
        #: When the server stopped answering (None while it answers).
        self.down_since: float | None = None

    def command(self, args: Sequence[Arg] | bytes, timeout: float) -> object:
        """Send one command (its arguments, or packed) and wait at most ``timeout`` for its reply.

        One attempt: a connection that failed or timed out is dropped.
        """
        import redis  # noqa: PLC0415 (optional: imported only when used)

        packed = args if isinstance(args, bytes) else pack(args)
        with self._idle_lock:
            conn = self._idle.pop() if self._idle else connect(self.server)
        # Read when the connection is (re)made: the handshake waits no longer than the call.
        conn.socket_connect_timeout = min(CONNECT_ATTEMPT, timeout)
        conn.socket_timeout = timeout
        try:
            conn.send_packed_command([packed])
            if not conn.can_read(timeout=timeout):
                raise redis.TimeoutError(f"no reply within {timeout:.3g} s")
            reply: object = conn.read_response()
        except redis.ResponseError:  # an answer: the connection is fine
            self._give_back(conn)
            raise
        except BaseException:
            conn.disconnect()
            raise
        self._give_back(conn)
        return reply

    def script(
        self,
        source: str,
        keys: Sequence[str],
        args: Callable[[int], Sequence[Arg]],
        deadline: float | None,
    ) -> list[object]:
        """Run a Lua script until the server answers (see ``run``); ``args`` of the attempt."""
        from redis.exceptions import NoScriptError  # noqa: PLC0415 (optional)

        count, head = _script_head(source, tuple(keys))

        def call(attempt: int, timeout: float) -> object:
            given = args(attempt)
            packed = b"*%d\r\n%s%s" % (count + len(given), head, b"".join(map(_bulk, given)))
            try:
                return self.command(packed, timeout)
            except NoScriptError:  # a restarted server forgot it
                return self.command(["EVAL", source, len(keys), *keys, *given], timeout)

        return as_list(self.run(call, deadline))

    def run(self, call: Callable[[int, float], R], deadline: float | None, block: float = 0.0) -> R:
        """Run ``call(attempt, timeout)`` until the server answers; a lost connection is retried.

        Each attempt waits for its reply no longer than the deadline allows (plus
        ``block``, the time a blocking command itself may wait).
        """
        import redis  # noqa: PLC0415 (optional: imported only when used)

        attempt = 0
        while True:
            if deadline is None:
                timeout = REPLY_TIMEOUT
            else:
                timeout = min(REPLY_TIMEOUT, max(REPLY_FLOOR, deadline - time.monotonic()))
            try:
                result = call(attempt, timeout + block + (BLOCK_GRACE if block else 0.0))
            except redis.AuthenticationError as exc:
                raise ConfigError(
                    f"the redis server at {self.server.describe()} refused the "
                    f"credentials: {self._scrub(exc)}"
                ) from exc
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self._lost_connection(exc, deadline, attempt)
                attempt += 1
                continue
            except redis.RedisError as exc:
                self._refused(exc)
            if self.down_since is not None:
                log.info("reconnected to the redis server at %s", self.server.describe())
                self.down_since = None
            return result

    def disconnect(self) -> None:
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.disconnect()

    def _give_back(self, conn: Connection) -> None:
        with self._idle_lock:
            self._idle.append(conn)

    def _lost_connection(self, exc: Exception, deadline: float | None, attempt: int) -> None:
        """Give up if it is time to (see the module doc), else pause before the next attempt."""
        now = time.monotonic()
        where = self.server.describe()
        since = self.down_since  # other threads of this process share it
        if since is None:
            since = self.down_since = now
            log.warning("lost the redis server at %s (%s); reconnecting", where, self._scrub(exc))
        if now - since >= self.reconnect:
            raise ServerUnreachable(
                f"the redis server at {where} has been unreachable for more than "
                f"{self.reconnect:g} s (option reconnect): {self._scrub(exc)}"
            ) from exc
        if deadline is not None and now >= deadline:
            raise ChannelTimeout(
                f"the redis server at {where} did not answer before the timeout: {self._scrub(exc)}"
            ) from exc
        pause = min(0.5, 0.02 * 2**attempt)
        if deadline is not None:
            pause = min(pause, max(0.0, deadline - now))
        time.sleep(pause)

    def _refused(self, exc: Exception) -> NoReturn:
        from redis.exceptions import OutOfMemoryError  # noqa: PLC0415 (optional)

        where = self.server.describe()
        if isinstance(exc, OutOfMemoryError) or "maxmemory" in str(exc):
            raise ServerFull(
                f"the redis server at {where} is at its memory limit (maxmemory) and "
                "refuses new items; receivers can still drain the channel"
            ) from exc
        raise ChannelError(
            f"the redis server at {where} refused a command: {self._scrub(exc)}"
        ) from exc

    def _scrub(self, exc: BaseException) -> str:
        return scrub(str(exc), self.server)


_heads: dict[tuple[str, tuple[str, ...]], tuple[int, bytes]] = {}


def _script_head(source: str, keys: tuple[str, ...]) -> tuple[int, bytes]:
    """``EVALSHA SHA NUMKEYS KEYS...`` packed once per script and channel, and its length."""
    head = _heads.get((source, keys))
    if head is None:
        sha = hashlib.sha1(source.encode()).hexdigest()
        words: list[Arg] = ["EVALSHA", sha, len(keys), *keys]
        head = _heads[(source, keys)] = (len(words), b"".join(map(_bulk, words)))
    return head


def pack(args: Sequence[Arg]) -> bytes:
    """A command as the server reads it: an array of bulk strings."""
    return b"*%d\r\n%s" % (len(args), b"".join(map(_bulk, args)))


def _bulk(arg: Arg) -> bytes:
    if isinstance(arg, str):
        arg = arg.encode()
    elif isinstance(arg, int):
        arg = b"%d" % arg
    elif isinstance(arg, float):
        arg = repr(arg).encode()
    return b"$%d\r\n%s\r\n" % (len(arg), arg)


def as_list(reply: object) -> list[object]:
    """A reply that must be an array."""
    if isinstance(reply, tuple):
        return list(reply)  # pyright: ignore[reportUnknownArgumentType]
    if not isinstance(reply, list):
        _unexpected(reply)
    return reply  # pyright: ignore[reportUnknownVariableType]


def as_int(value: object) -> int:
    """A reply that must be an integer (or its digits)."""
    if isinstance(value, int | bytes):
        return int(value)
    _unexpected(value)


def as_bytes(value: object) -> bytes:
    """A reply that must be a string (an integer is taken as its digits)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, int):
        return str(value).encode()
    _unexpected(value)


def _unexpected(reply: object) -> NoReturn:
    raise ChannelError(f"unexpected reply from the redis server: {type(reply).__name__}")
