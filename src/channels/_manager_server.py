"""Inside a manager server: the hub that holds the channels, and a server that knows its clients.

The server is ``multiprocessing.managers.Server`` with three additions:

* it numbers each client connection and keeps the set that is still open, so a
  channel can tell that a peer is gone even when the peer runs on another
  machine (a process that dies closes its sockets, and the server thread that
  served the socket ends);
* it holds one object, the hub, at a fixed id, through which clients open
  channels and move their items (``_manager_state`` holds each channel);
* it stops cleanly: ``stop()``, a signal handler's ``request_stop()`` or a
  manager's shutdown request ends ``serve_forever``, which then returns.

A client process names itself to the server with one idle *anchor* connection:
the anchor's number is the process's identity in the channels' ledgers, and
the anchor closing is the process's death. Its other connections, one per
thread, carry the calls.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from multiprocessing.managers import Server
from typing import TYPE_CHECKING, Any, NoReturn, cast

from ._errors import ChannelBroken, ChannelClosed, ChannelError, ConfigError, EndOfChannel
from ._ledger import BROKEN
from ._manager_state import ChannelState

if TYPE_CHECKING:
    from multiprocessing.connection import Listener

__all__ = ["HUB_ID", "ChannelServer", "Hub", "describe_address"]

log = logging.getLogger(__name__)

#: The id of the hub in the server's table of shared objects.
HUB_ID = "channels"
#: How long an unauthenticated connection may take to answer the challenge.
HANDSHAKE_TIMEOUT = 10.0
_BACKLOG = 128


class _Caller(threading.local):
    """The client connection that the current server thread serves."""

    conn: Connection | None = None
    cid: int = 0
    session: int = 0

    def gone(self) -> bool:
        """Whether the client hung up: its socket is readable while a call of its own is pending."""
        conn = self.conn
        if conn is None:
            return False
        try:
            return conn.poll(0)
        except (OSError, EOFError, ValueError):
            return True


_caller = _Caller()


class Hub:
    """The object clients call: opens channels (by name or anonymous) and runs their calls.

    A channel that is over (ended or broken) and drained is dropped. Its id stays
    meaningful: a later call on it answers as an ended channel would, or raises
    ``ChannelBroken`` again for a broken one. A name whose channel is over and
    drained names a fresh channel at its next open.
    """

    EXPOSED = (
        "hello",
        "attach",
        "open",
        "send",
        "recv",
        "clone",
        "close_sender",
        "sender_open",
        "close_receiver",
    )

    def __init__(self) -> None:
        self.nonce: int = secrets.randbits(62) | 1
        self._lock = threading.Lock()
        self._channels: dict[int, ChannelState] = {}
        self._names: dict[str, int] = {}
        self._broken: dict[int, str] = {}
        self._ids = itertools.count(1)
        self._next = 1
        self._open_conns: set[int] = set()
        self._sessions: set[int] = set()

    # -- connections (called by the server) ---------------------------------------

    def alive(self, session: int, stamp: int = 0) -> bool:
        """Whether the process named ``session`` still holds its anchor connection."""
        return session in self._open_conns

    def connected(self, cid: int) -> None:
        """Connection ``cid`` is open."""
        self._open_conns.add(cid)

    def disconnected(self, cid: int) -> None:
        """Connection ``cid`` closed; if it was a process's anchor, that process is gone."""
        self._open_conns.discard(cid)
        if cid in self._sessions:
            self._sessions.discard(cid)
            with self._lock:
                states = list(self._channels.values())
            for state in states:  # waiters look for dead peers now, not at their next slice
                state.forget(cid)

    # -- calls from clients ----------------------------------------------------------

    def hello(self) -> tuple[int, int]:
        """Make the calling connection its process's anchor; return (server nonce, session)."""
        session = _caller.cid
        if not session:
            raise ChannelError("not called from a client connection")
        self._sessions.add(session)
        _caller.session = session
        return self.nonce, session

    def attach(self, session: int) -> int:
        """Say which process the calling connection belongs to; return the server nonce."""
        _caller.session = session
        return self.nonce

    def open(self, name: str | None, maxsize: int) -> tuple[int, int]:
        """Open channel ``name`` (a new one if None, or if it is over): (channel id, handle)."""
        with self._lock:
            if name is not None and name in self._names:
                state = self._channels.get(self._names[name])
                if state is not None and not state.finished:
                    if state.maxsize != maxsize:
                        raise ConfigError(
                            f"channel {name!r} exists with maxsize={state.maxsize}; "
                            f"it cannot be reopened with maxsize={maxsize}"
                        )
                    return state.cid, state.open_handle()
            cid = next(self._ids)
            self._next = cid + 1
            state = ChannelState(cid, name, maxsize, self.alive)
            self._channels[cid] = state
            if name is not None:
                self._names[name] = cid
            log.debug("opened %r", state)
            return cid, state.first

    def send(self, cid: int, token: int, data: bytes, timeout: float | None, block: bool) -> bool:
        """Put ``data`` in channel ``cid`` for handle ``token``; False: not yet, ask again."""
        state = self._state(cid)
        if state is None:
            self._raise_over(cid, ChannelClosed("the channel has ended; this handle is closed"))
        return state.send(_calling(), token, data, timeout, block)

    def recv(self, cid: int, timeout: float | None, block: bool) -> bytes | None:
        """Take the next item of channel ``cid``; None: not yet, ask again."""
        state = self._state(cid)
        if state is None:
            self._raise_over(cid, EndOfChannel("every sender closed and the channel is drained"))
        try:
            return state.recv(_calling(), timeout, block)
        finally:
            if state.finished:
                self._retire(state)

    def clone(self, cid: int, token: int) -> int:
        """Open another sender handle on channel ``cid``."""
        state = self._state(cid)
        if state is None:
            self._raise_over(cid, ChannelClosed("cannot clone a closed sender handle"))
        return state.clone(token)

    def close_sender(self, cid: int, token: int) -> None:
        """Close handle ``token`` of channel ``cid``."""
        state = self._state(cid)
        if state is not None:
            state.close_sender(token)
            if state.finished:
                self._retire(state)

    def sender_open(self, cid: int, token: int) -> bool:
        """Whether handle ``token`` of channel ``cid`` is open."""
        state = self._state(cid)
        return state is not None and state.sender_open(token)

    def close_receiver(self, cid: int) -> None:
        """Forget the calling process as a receiver of channel ``cid``."""
        state = self._state(cid)
        if state is not None:
            state.close_receiver(_calling().session)

    # -- books ---------------------------------------------------------------------------

    def _state(self, cid: int) -> ChannelState | None:
        return self._channels.get(cid)

    def _raise_over(self, cid: int, ended: ChannelError) -> NoReturn:
        """Answer for a dropped channel: ``ended``, or ``ChannelBroken`` if it broke."""
        if cid in self._broken:
            raise ChannelBroken(self._broken[cid])
        if 0 < cid < self._next:
            raise ended
        raise ChannelError(f"this server holds no channel {cid}")

    def _retire(self, state: ChannelState) -> None:
        with self._lock, state.lock:
            if not state.finished or self._channels.get(state.cid) is not state:
                return
            if state.ledger.flags & BROKEN:
                self._broken[state.cid] = state.ledger.broken_reason
            del self._channels[state.cid]
            if state.name is not None and self._names.get(state.name) == state.cid:
                del self._names[state.name]
        log.debug("dropped %r", state)


def _calling() -> _Caller:
    if not _caller.session:
        raise ChannelError("this connection has not said which process it belongs to")
    return _caller


_conn_ids = itertools.count(1)


class ChannelServer(Server):
    """A manager server that knows which client connections are open, and stops cleanly."""

    listener: Listener
    stop_event: threading.Event
    hub: Hub

    def __init__(
        self,
        registry: dict[str, tuple[Callable[..., Any], Iterable[str], dict[str, str], Any]],
        address: tuple[str, int] | str | None,
        authkey: bytes,
        serializer: str,
    ) -> None:
        super().__init__(registry, address, authkey, serializer)
        _widen_backlog(self.listener)
        self.stop_event = threading.Event()
        self.hub = Hub()
        self.id_to_obj[HUB_ID] = (self.hub, set(Hub.EXPOSED), {})
        self._stop_requested = False
        self._closing = False
        self._conns: dict[int, Connection] = {}

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
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop_event.set()
            self._close()

    def accepter(self) -> None:
        while not self._closing:
            try:
                conn = self.listener.accept()
            except OSError:
                if self._closing:
                    return
                time.sleep(0.01)  # out of file descriptors, say: do not spin
                continue
            if self._closing:
                conn.close()
                return
            threading.Thread(target=self.handle_request, args=(conn,), daemon=True).start()

    def handle_request(self, conn: Connection) -> None:
        _tune(conn, HANDSHAKE_TIMEOUT)
        super().handle_request(conn)

    def serve_client(self, conn: Connection) -> None:
        _tune(conn, 0)
        cid = next(_conn_ids)
        _caller.cid = cid
        _caller.conn = conn
        _caller.session = 0
        self._conns[cid] = conn
        self.hub.connected(cid)
        try:
            super().serve_client(conn)
        finally:
            self._conns.pop(cid, None)
            self.hub.disconnected(cid)

    def _close(self) -> None:
        if self._closing:
            return
        self._closing = True
        _wake_accepter(self.listener.address)
        self.listener.close()
        for conn in list(self._conns.values()):
            _hang_up(conn)
        log.info("channel server at %r stopped", self.address)


def _tune(conn: Connection, timeout: float) -> None:
    """Bound how long a read may block (0: no bound); no Nagle delay on TCP."""
    try:
        sock = socket.socket(fileno=conn.fileno())
    except OSError:
        return
    try:
        seconds = int(timeout)
        micro = int((timeout - seconds) * 1e6)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", seconds, micro))
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass
    finally:
        sock.detach()


def _hang_up(conn: Connection) -> None:
    """Shut a connection down so its reader sees the end; the fd stays its owner's to close."""
    try:
        sock = socket.socket(fileno=conn.fileno())
    except (OSError, ValueError):
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.detach()


def _wake_accepter(address: object) -> None:
    """Connect once to our own listener so a thread blocked in accept() sees that we stop."""
    try:
        if isinstance(address, tuple):
            host, port = cast("tuple[str, int]", address)
            host = "127.0.0.1" if host in ("", "0.0.0.0") else host
            socket.create_connection((host, port), timeout=1).close()
        elif isinstance(address, str):
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(1)
                sock.connect(address)
    except OSError:
        pass


def _widen_backlog(listener: object) -> None:
    """Let more clients queue for accept() than the stdlib's 16 (many processes start at once)."""
    sock = getattr(getattr(listener, "_listener", None), "_socket", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.listen(_BACKLOG)


def describe_address(address: object) -> str:
    """``HOST:PORT`` for a TCP address, the path for a Unix socket."""
    if isinstance(address, tuple):
        host, port = cast("tuple[object, object]", address)
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)
