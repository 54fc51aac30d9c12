"""Inside a manager server: a ``multiprocessing.managers.Server`` that knows its clients.

The server is ``multiprocessing.managers.Server`` with these additions:

* it numbers each client connection and keeps the set that is still open, so a
  channel can tell that a peer is gone even when the peer runs on another
  machine (a process that dies closes its sockets, and the server thread that
  served the socket ends);
* it holds one object, the hub, at a fixed id, through which clients open
  channels and move their items (``hub``);
* it stops cleanly: ``stop()``, a signal handler's ``request_stop()``, a
  manager's shutdown request, or the death of the process that started it
  (``exit_with``) ends ``serve_forever``, which then returns;
* it listens with a socket of its own (IPv6 too), and a peer that fails the
  handshake or takes too long gets nothing but the refusal, logged at WARNING,
  never a traceback;
* it keeps strangers from wearing it out: the whole handshake has a deadline
  (not each read: a peer that dribbles a byte now and then is still cut off),
  and at most ``MAX_HANDSHAKES`` connections may be proving the key at once;
  past that, a new one pushes out the oldest once that one has had
  ``HANDSHAKE_HEAD`` seconds. A client proves the key in milliseconds, so a
  flood of slow peers delays it by seconds at most, and never shuts it out.
  Nothing a peer sends is unpickled before it has proved the key.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import secrets
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from multiprocessing.managers import Server
from multiprocessing.util import get_temp_dir
from typing import Any, cast

from ..._engine.conditions import condition_of
from ..._errors import ChannelError
from ..._process.liveness import pid_alive
from ..._timing import HANDSHAKE_HEAD, HANDSHAKE_TIMEOUT
from .hub import Hub, caller
from .wire import HUB_ID, borrowed_socket, describe_address, hang_up, set_io_timeout

__all__ = ["ChannelServer", "exit_with"]

log = logging.getLogger(__name__)

#: How many connections may be proving the key at once.
MAX_HANDSHAKES = 128
#: How many refused connections are logged in 10 s at most (the rest are counted).
LOGGED_REFUSALS = 20
_BACKLOG = 128


_conn_ids = itertools.count(1)

#: The process whose death stops the server built in this process (see ``exit_with``).
_creator: tuple[int, int] | None = None


def exit_with(pid: int, stamp: int) -> None:
    """Make the next server built in this process stop once process ``pid`` has ended.

    ``stamp`` is that process's start time, so a recycled pid does not count.

    Run in a manager's server process before its server is built, so that a
    private server never outlives the process that started it, however that
    process died.
    """
    global _creator
    _creator = (pid, stamp)


class ChannelServer(Server):
    """A manager server that knows which client connections are open, and stops cleanly.

    It also listens on IPv6, answers a peer that fails the handshake with nothing
    but the refusal (logged at WARNING), and stops once its creator is gone
    when ``exit_with`` asked for that.
    """

    listener: _Listener
    address: tuple[str, int] | str | None
    id_to_obj: dict[str, tuple[Any, set[str], dict[str, str]]]
    mutex: threading.Lock
    stop_event: threading.Event
    hub: Hub
    #: How long an unauthenticated connection may take to prove the key, in seconds, in all.
    handshake_timeout: float = HANDSHAKE_TIMEOUT
    #: How many connections may be proving the key at once.
    max_handshakes: int = MAX_HANDSHAKES

    def __init__(
        self,
        registry: dict[str, tuple[Callable[..., Any], Iterable[str], dict[str, str], Any]],
        address: tuple[str, int] | str | None,
        authkey: bytes,
        serializer: str,
    ) -> None:
        # Server.__init__ without its listener, which knows neither IPv6 nor a wide backlog.
        self.registry = registry
        self.authkey = authkey
        self.listener = _Listener(_socket_path() if address is None else address)
        self.address = self.listener.address
        self.id_to_obj = {"0": (None, set(), {})}
        self.id_to_refcount: dict[str, int] = {}
        self.id_to_local_proxy_obj: dict[str, tuple[Any, set[str], dict[str, str]]] = {}
        self.mutex = threading.Lock()
        self.stop_event = threading.Event()
        self.hub = Hub()
        self.id_to_obj[HUB_ID] = (self.hub, set(Hub.EXPOSED), {})
        self.creator = _creator
        self._stop_requested = False
        self._closing = False
        self._conns: dict[int, Connection] = {}
        # Connections proving the key, oldest first, with when they came.
        self._doorway: dict[Connection, float] = {}
        self._doorway_lock = threading.Lock()
        # Refusals logged in the 10 s window that began at _log_window; those left out.
        self._log_window, self._logged, self._unlogged = 0.0, 0, 0

    def request_stop(self) -> None:
        """Ask ``serve_forever`` to return soon; safe to call from a signal handler."""
        self._stop_requested = True

    def stop(self) -> None:
        """Stop serving (from any thread)."""
        self.stop_event.set()

    def serve_forever(self) -> None:
        """Accept clients until stopped, then close the listener and every client connection."""
        accepter = threading.Thread(target=self.accepter, name="channels-accepter", daemon=True)
        accepter.start()
        try:
            while not self._stop_requested and not self.stop_event.wait(0.2):
                self._expire_handshakes()
                if self.creator is not None and not pid_alive(*self.creator):
                    log.info("the process that started this server is gone; stopping")
                    break
        except KeyboardInterrupt:
            pass
        finally:
            self.stop_event.set()
            self._close()

    def accepter(self) -> None:
        while not self._closing:
            try:
                conn, peer = self.listener.accept()
            except OSError:
                if self._closing:
                    return
                time.sleep(0.01)  # out of file descriptors, say: do not spin
                continue
            if self._closing:
                conn.close()
                return
            self._admit(conn)
            threading.Thread(target=self.handle_request, args=(conn, peer), daemon=True).start()

    def handle_request(self, conn: Connection, peer: object = None) -> None:
        """Prove the key both ways, then run the request; a stranger learns nothing else.

        ``conn`` was admitted to the doorway (``_admit``); it may be cut off meanwhile.
        """
        try:
            try:
                set_io_timeout(conn, self.handshake_timeout)  # each read; _expire: the whole
                deliver_challenge(conn, self.authkey)
                answer_challenge(conn, self.authkey)
            except Exception as exc:
                self._refuse(peer, _why(exc) if self._leave(conn) else _why(TimeoutError()))
                return
            if not self._leave(conn):
                self._refuse(peer, _why(TimeoutError()))
                return
            self._dispatch(conn)
        except SystemExit:  # serve_client ends with sys.exit() when its client hangs up
            pass
        finally:
            conn.close()

    def _leave(self, conn: Connection) -> bool:
        """``conn`` is done with its handshake: False if it was cut off meanwhile."""
        with self._doorway_lock:
            return self._doorway.pop(conn, None) is not None

    def _refuse(self, peer: object, why: str) -> None:
        """Log a refused connection: in a flood, ``LOGGED_REFUSALS`` lines per 10 s at most."""
        now = time.monotonic()
        with self._doorway_lock:
            if now - self._log_window >= 10:
                self._log_window, self._logged = now, 0
            if self._logged >= LOGGED_REFUSALS:
                self._unlogged += 1
                return
            self._logged += 1
            more, self._unlogged = self._unlogged, 0
        since = f" ({more} more were refused since the last line)" if more else ""
        log.warning("refused a connection from %s: %s%s", _describe_peer(peer), why, since)

    def _admit(self, conn: Connection) -> None:
        """Let ``conn`` prove the key; if too many are at it, push out the oldest.

        The oldest is pushed out once it has had ``HANDSHAKE_HEAD`` seconds; until
        then the accepter waits, and new peers wait in the listen backlog.
        """
        with self._doorway_lock:
            while len(self._doorway) >= self.max_handshakes and not self._closing:
                oldest, came = next(iter(self._doorway.items()))
                young = came + HANDSHAKE_HEAD - time.monotonic()
                if young <= 0:
                    del self._doorway[oldest]
                    hang_up(oldest)
                    break
                self._doorway_lock.release()  # let handshakes that end leave meanwhile
                try:
                    time.sleep(min(young, 0.05))
                finally:
                    self._doorway_lock.acquire()
            self._doorway[conn] = time.monotonic()

    def _expire_handshakes(self) -> None:
        """Cut off every connection that has not proved the key within ``handshake_timeout``."""
        cutoff = time.monotonic() - self.handshake_timeout
        with self._doorway_lock:
            for conn, came in list(self._doorway.items()):
                if came > cutoff:
                    break  # the rest came later
                del self._doorway[conn]
                hang_up(conn)

    def _dispatch(self, conn: Connection) -> None:
        """Run one request of an authenticated client, as ``Server.handle_request`` does."""
        try:
            _, name, args, kwds = conn.recv()
            if name not in self.public:
                raise ChannelError(f"{name!r} is not a server request")
            msg: tuple[str, object] = ("#RETURN", getattr(self, name)(conn, *args, **kwds))
        except Exception:
            msg = ("#TRACEBACK", traceback.format_exc())
        with contextlib.suppress(Exception):
            conn.send(msg)

    def serve_client(self, conn: Connection) -> None:
        _tune(conn)
        cid = next(_conn_ids)
        caller.cid = cid
        caller.conn = conn
        caller.session = 0
        self._conns[cid] = conn
        self.hub.connected(cid)
        try:
            try:
                first: object = conn.recv()
            except (EOFError, OSError):
                return
            if _for_hub(first):
                self._serve_hub(conn, first)
            else:  # an object of a type registered on the manager: the stock loop serves it
                super().serve_client(_Replay(conn, first))  # type: ignore[arg-type]
        finally:
            self.hub.abort()
            self._conns.pop(cid, None)
            self.hub.disconnected(cid)

    def _serve_hub(self, conn: Connection, request: object) -> None:
        """Run a client's calls on the hub until it hangs up; ``QUIET`` calls get no answer.

        A call that meets a state of its channel answers that ``Condition`` and its
        details, which the client raises as ``_policy`` says; any other error
        (a managed dict's ``KeyError``, say) goes back as the exception.
        """
        hub = self.hub
        while not self.stop_event.is_set():
            msg: tuple[str, object]
            method = ""
            try:
                _, method, args, kwds = cast(
                    "tuple[str, str, tuple[Any, ...], dict[str, Any]]", request
                )
                if method not in Hub.EXPOSED:
                    raise ChannelError(f"{method!r} is not a call of the channel server")
                msg = ("#RETURN", getattr(hub, method)(*args, **kwds))
            except Exception as exc:
                report = condition_of(exc)
                msg = ("#ERROR", exc) if report is None else ("#CONDITION", report)
                if method in Hub.QUIET:
                    log.debug("%s failed: %r", method, exc)
            if method not in Hub.QUIET:
                try:
                    conn.send(msg)
                except (OSError, EOFError):
                    return
                except Exception:  # an answer that does not pickle (nothing was written)
                    name = type(msg[1]).__name__
                    with contextlib.suppress(OSError, EOFError):
                        conn.send(("#UNSERIALIZABLE", f"an answer of type {name} does not pickle"))
            try:
                request = conn.recv()
            except (EOFError, OSError):
                return

    def _close(self) -> None:
        if self._closing:
            return
        self._closing = True
        _wake_accepter(self.listener.address)
        self.listener.close()
        for conn in list(self._conns.values()):
            hang_up(conn)
        log.info("channel server at %s stopped", describe_address(self.address))


def _for_hub(request: object) -> bool:
    """Whether ``request`` is a call on the hub (the first of a channel client's connection)."""
    parts = cast("tuple[object, ...]", request) if isinstance(request, tuple) else ()
    return bool(parts) and parts[0] == HUB_ID


class _Replay:
    """A connection whose first request was read already: ``recv`` gives it again first."""

    def __init__(self, conn: Connection, first: object) -> None:
        self._conn = conn
        self._first: list[object] = [first]

    def recv(self) -> object:
        return self._first.pop() if self._first else self._conn.recv()

    def send(self, obj: object) -> None:
        self._conn.send(obj)

    def close(self) -> None:
        self._conn.close()


class _Listener:
    """A listening TCP (IPv4 or IPv6) or Unix socket whose connections always block."""

    def __init__(self, address: tuple[str, int] | str) -> None:
        if isinstance(address, tuple):
            family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
            sock = socket.socket(family)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        else:
            sock = socket.socket(socket.AF_UNIX)
        try:
            sock.bind(address)
            sock.listen(_BACKLOG)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self.address: tuple[str, int] | str = (
            address if isinstance(address, str) else cast("tuple[str, int]", sock.getsockname()[:2])
        )

    def accept(self) -> tuple[Connection, object]:
        """The next client's connection, and its address."""
        sock, peer = self._sock.accept()
        sock.setblocking(True)  # a default socket timeout would make it non-blocking
        return Connection(sock.detach()), peer

    def close(self) -> None:
        """Stop listening; remove the socket file of a Unix socket."""
        self._sock.close()
        if isinstance(self.address, str) and not self.address.startswith("\0"):
            with contextlib.suppress(OSError):
                os.unlink(self.address)


def _socket_path() -> str:
    """A new socket path in this process's private temporary folder (removed at exit)."""
    return os.path.join(get_temp_dir(), f"channels-{secrets.token_hex(8)}")


def _tune(conn: Connection) -> None:
    """Let reads and writes of an authenticated client block for good; no Nagle delay on TCP."""
    with contextlib.suppress(OSError):
        set_io_timeout(conn, 0)
        with borrowed_socket(conn) as sock:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _describe_peer(peer: object) -> str:
    if isinstance(peer, tuple) and len(cast("tuple[object, ...]", peer)) >= 2:
        return describe_address(cast("tuple[object, ...]", peer)[:2])
    return "a local process"  # a Unix socket's peer has no address


def _why(exc: Exception) -> str:
    """Why a handshake failed, in words that say nothing of the server's code."""
    if isinstance(exc, AuthenticationError):
        return "it does not know the authkey"
    if isinstance(exc, BlockingIOError | TimeoutError):
        return "no handshake within the time allowed"
    if isinstance(exc, EOFError | ConnectionError) or "end of file" in str(exc):
        return "it hung up during the handshake"
    return f"a malformed handshake ({type(exc).__name__})"


def _wake_accepter(address: object) -> None:
    """Connect once to our own listener so a thread blocked in accept() sees that we stop."""
    try:
        if isinstance(address, tuple):
            host, port = cast("tuple[str, int]", address)
            if host in ("", "0.0.0.0", "::"):
                host = "::1" if host == "::" else "127.0.0.1"
            socket.create_connection((host, port), timeout=1).close()
        elif isinstance(address, str):
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(1)
                sock.connect(address)
    except OSError:
        pass
