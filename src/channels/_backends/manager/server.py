"""Inside a manager server: the hub that holds the channels, and a server that knows its clients.

The server is ``multiprocessing.managers.Server`` with these additions:

* it numbers each client connection and keeps the set that is still open, so a
  channel can tell that a peer is gone even when the peer runs on another
  machine (a process that dies closes its sockets, and the server thread that
  served the socket ends);
* it holds one object, the hub, at a fixed id, through which clients open
  channels and move their items (``state`` holds each channel);
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

A client process names itself to the server with one idle *anchor* connection:
the anchor's number is the process's identity in the channels' ledgers, and
the anchor closing is the process's death. Its other connections, one per
thread, carry the calls. A child that was handed a sender handle as it started
may die before it ever connects; the process that started it names it by pid
(``hand_over``) where pids mean the same here, and otherwise reports its death
(``holder_died``).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import secrets
import socket
import struct
import threading
import time
import traceback
from collections.abc import Callable, Generator, Iterable
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from multiprocessing.managers import Server
from multiprocessing.util import get_temp_dir
from typing import Any, NoReturn, cast

from ..._errors import ChannelBroken, ChannelClosed, ChannelError, ConfigError, EndOfChannel
from ..._ledger import BROKEN
from ..._liveness import host_key, pid_alive
from .state import ChannelState
from .store import ObjectStore

__all__ = [
    "GONE",
    "HUB_ID",
    "ChannelServer",
    "Hub",
    "borrowed_socket",
    "describe_address",
    "exit_with",
    "set_read_timeout",
]

log = logging.getLogger(__name__)

#: The id of the hub in the server's table of shared objects.
HUB_ID = "channels"
#: The identity in a channel's books of a holder reported dead (see ``Hub.alive``).
GONE = -(1 << 62)
#: How many dropped channels at most keep their counts for the processes that used them.
FINAL_KEPT = 10_000
#: How long an unauthenticated connection may take to prove the key, in all.
HANDSHAKE_TIMEOUT = 10.0
#: How many connections may be proving the key at once.
MAX_HANDSHAKES = 128
#: How long a handshake is safe from being pushed out by a newer one.
HANDSHAKE_HEAD = 0.5
#: How many refused connections are logged in 10 s at most (the rest are counted).
LOGGED_REFUSALS = 20
_BACKLOG = 128


class _Caller(threading.local):
    """The client connection that the current server thread serves."""

    conn: Connection | None = None
    cid: int = 0
    session: int = 0
    #: The put or take this connection staged and has not committed: (channel, items, is_put).
    pending: tuple[ChannelState, list[bytes], bool] | None = None

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
        "put",
        "take",
        "commit",
        "wait",
        "stats",
        "task_done",
        "unfinished",
        "clone",
        "close_sender",
        "sender_open",
        "hand_over",
        "holder_died",
        "close_receiver",
        "new_object",
        "call_object",
        "hold_object",
        "drop_object",
    )
    #: Calls that get no answer: the client goes on without waiting for one.
    QUIET = frozenset({"commit", "drop_object"})

    def __init__(self) -> None:
        self.nonce: int = secrets.randbits(62) | 1
        self._lock = threading.Lock()
        self._channels: dict[int, ChannelState] = {}
        self._names: dict[str, int] = {}
        self._broken: dict[int, str] = {}
        # Channels dropped while a session that used them lives (the newest FINAL_KEPT):
        # (sent, received, name, those sessions) at the end. While it lasts, the name
        # still names it to open_sender and open_receiver (a plain open starts afresh).
        self._final: dict[int, tuple[int, int, str | None, set[int]]] = {}
        self._final_by_session: dict[int, set[int]] = {}
        self._ids = itertools.count(1)
        self._next = 1
        self._open_conns: set[int] = set()
        self._sessions: set[int] = set()
        self._objects = ObjectStore()
        self._host = host_key()

    # -- connections (called by the server) ---------------------------------------

    def alive(self, session: int, stamp: int = 0) -> bool:
        """Whether the process named ``session`` still holds its anchor connection.

        A negative number names a child that was handed a sender handle as it
        started (``hand_over``): ``-pid``, alive while that process runs, or
        ``GONE``, a holder reported dead.
        """
        if session < 0:
            return session != GONE and pid_alive(-session, stamp)
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
                for dropped in self._final_by_session.pop(cid, ()):
                    final = self._final.get(dropped)
                    if final is not None:
                        final[3].discard(cid)
                        if not final[3]:
                            self._forget_final(dropped)
            for state in states:  # waiters look for dead peers now, not at their next slice
                state.forget(cid)
            self._objects.release(cid)

    def abort(self) -> None:
        """The calling connection closed: undo the put or take it staged and never committed."""
        pending, _caller.pending = _caller.pending, None
        if pending is not None:
            state, items, is_put = pending
            if is_put:
                state.abort_put(len(items))
            else:
                state.abort_take(items)

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

    def open(
        self, name: str | None, maxsize: int, joinable: bool = False, half: str = ""
    ) -> tuple[int, int]:
        """Open channel ``name`` (a new one if None, or if it is over): (channel id, handle).

        ``half``: ``"sender"`` refuses a channel that is over (``ChannelClosed``);
        ``"receiver"`` opens no handle (0), and a new channel it makes waits for
        its first sender instead of ending.
        """
        session = _caller.session
        with self._lock:
            if name is not None and name in self._names:
                state = self._channels.get(self._names[name])
                if state is None and half and self._names[name] in self._final:
                    if half == "receiver":
                        return self._names[name], 0  # it sees the end, or the break
                    raise ChannelClosed(
                        f"channel {name!r} has ended: no sender can be opened on it "
                        "(its name names a new channel once every process that used it is gone)"
                    )
                if state is not None and not state.finished:
                    if state.maxsize != maxsize or state.joinable != joinable:
                        raise ConfigError(
                            f"channel {name!r} exists with maxsize={state.maxsize} and "
                            f"joinable={state.joinable}; open it with those (it was asked "
                            f"for maxsize={maxsize}, joinable={joinable})"
                        )
                    if session:
                        state.users.add(session)
                    if half == "receiver":
                        return state.cid, 0
                    token = state.open_handle()
                    if not token and half == "sender":
                        raise ChannelClosed(
                            f"channel {name!r} has ended: no sender can be opened on it"
                        )
                    return state.cid, token
            cid = next(self._ids)
            self._next = cid + 1
            state = ChannelState(
                cid, name, maxsize, self.alive, joinable, with_sender=half != "receiver"
            )
            if session:
                state.users.add(session)
            self._channels[cid] = state
            if name is not None:
                self._names[name] = cid
            log.debug("opened %r", state)
            return cid, 0 if half == "receiver" else state.first

    def put(self, cid: int, token: int, items: list[bytes], staged: bool = False) -> int:
        """Put what fits of ``items`` in channel ``cid`` for handle ``token``; how many went.

        ``staged``: they wait for the caller's ``commit`` (see ``state``).
        """
        state = self._state(cid)
        if state is None:
            self._raise_over(cid, ChannelClosed("the channel has ended; this handle is closed"))
        self.abort()  # a client commits before its next call: this is only ever a stray
        count = state.put(_calling(), token, items)
        if count:
            _caller.pending = (state, items[:count], True)
            if not staged:
                self.commit()
        return count

    def take(self, cid: int, max_items: int, staged: bool = False) -> list[bytes]:
        """Take up to ``max_items`` ready items of channel ``cid`` (``staged``: as ``put``)."""
        state = self._state(cid)
        if state is None:
            self._raise_over(cid, EndOfChannel("every sender closed and the channel is drained"))
        self.abort()
        try:
            got = state.take(_calling(), max_items)
        finally:
            if state.finished:
                self._retire(state)
        if got:
            _caller.pending = (state, got, False)
            if not staged:
                self.commit()
        return got

    def commit(self) -> None:
        """Make the put or take that the calling connection staged final."""
        pending, _caller.pending = _caller.pending, None
        if pending is None:
            return
        state, items, is_put = pending
        if is_put:
            state.commit_put(items)
        else:
            state.commit_take(_caller.session, len(items))
            if state.finished:
                self._retire(state)

    def wait(self, cid: int, sending: bool, timeout: float) -> None:
        """Wait until a put (or take) on channel ``cid`` may succeed, or ``timeout``."""
        state = self._state(cid)
        if state is not None:
            state.wait(sending, timeout)

    def stats(self, cid: int) -> tuple[int, ...]:
        """Channel ``cid``'s counts; a dropped channel reads as ended (or broken) and empty."""
        state = self._state(cid)
        if state is None:
            sent, received, _, _ = self._final.get(cid, (0, 0, None, set()))
            return (0, 0, 0, sent, received, 0, 1, int(cid in self._broken))
        return state.stats()

    def task_done(self, cid: int) -> None:
        """Mark the calling process's oldest item of channel ``cid`` not yet marked as done."""
        state = self._state(cid)
        if state is None:
            raise ChannelError("task_done() called more times than items were received")
        state.task_done(_calling().session)
        if state.finished:
            self._retire(state)

    def unfinished(self, cid: int) -> int:
        """Items of channel ``cid`` sent and not marked done."""
        state = self._state(cid)
        return 0 if state is None else state.unfinished()

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

    def hand_over(self, cid: int, token: int, pid: int, stamp: int, host: str) -> bool:
        """Count process ``pid`` as a sender of ``token`` from now: a child handed it as it started.

        Only where ``host`` says that the pid means the same process here (the
        caller's machine and pid namespace); returns whether it could.
        """
        if not host or host != self._host or pid <= 0:
            return False
        state = self._state(cid)
        if state is not None:
            state.note_holder(token, -pid, stamp)
        return True

    def holder_died(self, cid: int, token: int) -> None:
        """A process handed ``token`` as it started has died, seen by the one that started it."""
        state = self._state(cid)
        if state is not None:
            state.note_holder(token, GONE, 0)

    def close_receiver(self, cid: int) -> None:
        """Forget the calling process as a receiver of channel ``cid``."""
        state = self._state(cid)
        if state is not None:
            state.close_receiver(_calling().session)

    def new_object(self, kind: str, initial: bytes) -> int:
        """Hold a new managed dict or list (``store``) for the caller; its number."""
        return self._objects.new(kind, initial, _calling().session)

    def hold_object(self, oid: int) -> bool:
        """Count one more proxy of object ``oid`` in the calling process; whether it exists."""
        return self._objects.hold(oid, _calling().session)

    def drop_object(self, oid: int) -> None:
        """A proxy of object ``oid`` in the calling process is gone; the last frees it."""
        self._objects.drop(oid, _calling().session)

    def call_object(self, oid: int, op: str, args: bytes) -> object:
        """Run one operation on managed object ``oid``."""
        return self._objects.call(oid, op, args)

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

    def _forget_final(self, cid: int) -> None:
        """Drop what is kept of dropped channel ``cid``; the caller holds the lock."""
        final = self._final.pop(cid, None)
        if final is None:
            return
        for session in final[3]:
            self._final_by_session.get(session, set()).discard(cid)
        if final[2] is not None and self._names.get(final[2]) == cid:
            del self._names[final[2]]

    def _retire(self, state: ChannelState) -> None:
        with self._lock, state.lock:
            if not state.finished or self._channels.get(state.cid) is not state:
                return
            if state.ledger.flags & BROKEN:
                self._broken[state.cid] = state.ledger.broken_reason
            del self._channels[state.cid]
            users = state.users & self._sessions
            if users:
                self._final[state.cid] = (state.sent, state.received, state.name, users)
                for session in users:
                    self._final_by_session.setdefault(session, set()).add(state.cid)
                if len(self._final) > FINAL_KEPT:
                    self._forget_final(next(iter(self._final)))
            elif state.name is not None and self._names.get(state.name) == state.cid:
                del self._names[state.name]
        log.debug("dropped %r", state)


def _calling() -> _Caller:
    if not _caller.session:
        raise ChannelError("this connection has not said which process it belongs to")
    return _caller


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
                set_read_timeout(conn, self.handshake_timeout)  # each read; _expire: the whole
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
                    _hang_up(oldest)
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
                _hang_up(conn)

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
        _caller.cid = cid
        _caller.conn = conn
        _caller.session = 0
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
        """Run a client's calls on the hub until it hangs up; ``QUIET`` calls get no answer."""
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
                msg = ("#ERROR", exc)
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
            _hang_up(conn)
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


def set_read_timeout(conn: Connection, seconds: float) -> None:
    """Bound how long a read on ``conn`` may block (0: no bound)."""
    whole = int(seconds)
    value = struct.pack("ll", whole, int((seconds - whole) * 1e6))
    with borrowed_socket(conn) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)


def _tune(conn: Connection) -> None:
    """Let reads of an authenticated client block for good; no Nagle delay on TCP."""
    with contextlib.suppress(OSError):
        set_read_timeout(conn, 0)
        with borrowed_socket(conn) as sock:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _hang_up(conn: Connection) -> None:
    """Shut a connection down so its reader sees the end; the fd stays its owner's to close."""
    with contextlib.suppress(OSError, ValueError), borrowed_socket(conn) as sock:
        sock.shutdown(socket.SHUT_RDWR)


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


def describe_address(address: object) -> str:
    """``HOST:PORT`` for TCP, the path of a Unix socket, ``@NAME`` for an abstract one."""
    if isinstance(address, tuple):
        host, port = cast("tuple[object, object]", address)
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    text = str(address)
    return "@" + text[1:] if text.startswith("\0") else text
