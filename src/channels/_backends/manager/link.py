"""How a client process reaches a manager server: its connections and calls.

Each process keeps, per server, one ``Link``: an idle *anchor* connection,
whose closing tells the server that the process is gone, and one connection
per thread for its calls (see ``hub``). A call that fails because
the server went away raises ``ChannelBroken`` at once; a call interrupted half
way (by KeyboardInterrupt, say) drops its connection rather than leave it out
of step. A forked child closes its copies of the parent's connections and
makes its own. Which key it offers is ``keys``'s to say.
"""

from __future__ import annotations

import collections
import contextlib
import math
import multiprocessing
import os
import socket
import threading
import time
import weakref
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from typing import cast

from ..._engine.conditions import Broken, Condition, error, error_from
from ..._errors import (
    AuthkeyMissing,
    AuthkeyRejected,
    ChannelError,
    ChannelTimeout,
)
from ..._timing import CONNECT_TIMEOUT, MIN_ANSWER, REPLY_GRACE
from .keys import ENV_AUTHKEY, process_key
from .wire import HUB_ID, Address, describe_address, set_io_timeout

__all__ = [
    "Link",
    "connect",
    "expect_int",
    "expect_pair",
    "link_for",
]


def _gone(address: Address, exc: BaseException) -> ChannelError:
    detail = str(exc) or type(exc).__name__
    where = describe_address(address)
    return error(Condition.BROKEN, Broken.SERVER_GONE, f"the manager server at {where}: {detail}")


class _Late(TimeoutError):
    """The deadline passed before the answer came (``in_step``: the connection is still usable)."""

    def __init__(self, *, in_step: bool = False) -> None:
        super().__init__("no answer before the deadline")
        self.in_step = in_step


def _left(due: float) -> float:
    """Seconds until ``due``; ``_Late`` if it has passed."""
    left = due - time.monotonic()
    if left <= 0:
        raise _Late
    return left


def connect(address: Address, authkey: bytes, due: float | None = None) -> Connection:
    """Connect to a server (TCP over IPv4 or IPv6, or a Unix socket) and prove the key both ways.

    It serves ``BaseManager`` as its client too, whose own knows no IPv6. All of
    it is over by ``due`` (a ``time.monotonic()`` time; default ``CONNECT_TIMEOUT``).
    """
    if due is None:
        due = time.monotonic() + CONNECT_TIMEOUT
    if isinstance(address, tuple):
        sock = socket.create_connection(address, timeout=_left(due))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _keep_alive(sock)
    else:
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.settimeout(_left(due))
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
    sock.settimeout(None)  # Connection needs a blocking socket, whatever the default timeout
    conn = Connection(sock.detach())
    try:
        set_io_timeout(conn, _left(due))
        answer_challenge(conn, authkey)
        deliver_challenge(conn, authkey)
        set_io_timeout(conn, 0)
    except BaseException:
        conn.close()
        raise
    return conn


def _keep_alive(sock: socket.socket) -> None:
    """Have the system notice a server machine that vanished, so no call waits on it for good."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):  # Linux; elsewhere the system's defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _dial(address: Address, authkey: bytes, due: float) -> Connection:
    """Connect, prove the key both ways, and have the server give us a thread of our own."""
    conn = connect(address, authkey, due)
    try:
        conn.send((None, "accept_connection", (f"channels-client-{os.getpid()}",), {}))
        if not conn.poll(_left(due)):
            raise _Late
        kind, result = conn.recv()
        if kind != "#RETURN":
            raise ChannelError(f"the manager server refused the connection: {result}")
    except BaseException:
        conn.close()
        raise
    return conn


def _answer(conn: Connection, due: float) -> object:
    """The next answer on ``conn`` (by ``due``, or ever); raises the condition the server met.

    Errors that are no state of a channel (a managed dict's ``KeyError``, say)
    come back as the exception itself.
    """
    if due != math.inf and not conn.poll(max(0.0, due - time.monotonic())):
        raise _Late(in_step=True)
    kind, result = conn.recv()
    if kind == "#RETURN":
        return result
    if kind == "#CONDITION":
        raise error_from(result)
    if kind == "#ERROR" and isinstance(result, BaseException):
        raise result
    raise ChannelError(f"the manager server failed: {result}")


def _exchange(conn: Connection, method: str, args: tuple[object, ...], due: float) -> object:
    """One call on the hub over a connection that owes no answer."""
    conn.send((HUB_ID, method, args, {}))
    return _answer(conn, due)


class _Wire:
    """One thread's connection for its calls, and how many answers it still owes.

    An answer is owed for a call that came back without it (a wait whose answer
    was late): the next call reads and drops it first.
    """

    __slots__ = ("conn", "nonce", "owed", "timeout")

    def __init__(self, conn: Connection, nonce: int) -> None:
        self.conn = conn
        self.nonce = nonce
        self.owed = 0
        self.timeout = 0.0  # what each read and write on it may block, as last set

    def bound(self, left: float) -> None:
        """Let each read and write block about ``left`` seconds at most (set when it changes)."""
        wanted = 0.0 if left == math.inf else left  # 0: no bound
        now = self.timeout
        if wanted != now and (not wanted or not now or wanted < now or wanted > 2 * now):
            set_io_timeout(self.conn, wanted)
            self.timeout = wanted

    def post(self, method: str, args: tuple[object, ...]) -> None:
        """Send a call that gets no answer (one of the server's ``Hub.QUIET``)."""
        self.conn.send((HUB_ID, method, args, {}))

    def exchange(self, method: str, args: tuple[object, ...], due: float) -> object:
        """Send a call and return its answer, after the ones owed."""
        self.conn.send((HUB_ID, method, args, {}))
        while self.owed:
            with contextlib.suppress(ChannelError):
                _answer(self.conn, due)
            self.owed -= 1
        return _answer(self.conn, due)


def expect_int(answer: object, call: str) -> int:
    """The whole number the server answered to ``call``."""
    if isinstance(answer, int) and not isinstance(answer, bool):
        return answer
    raise ChannelError(f"the manager server answered {answer!r} to {call}")


def expect_pair(answer: object, call: str) -> tuple[int, int]:
    """The two whole numbers the server answered to ``call``."""
    pair = cast("tuple[object, ...]", answer) if isinstance(answer, tuple) else ()
    if len(pair) == 2:
        return expect_int(pair[0], call), expect_int(pair[1], call)
    raise ChannelError(f"the manager server answered {answer!r} to {call}")


def _refused(address: Address, authkey: bytes) -> AuthkeyRejected:
    """The error for a server that refused ``authkey``: missing, if it was this process's own."""
    where = describe_address(address)
    if authkey == process_key():
        return AuthkeyMissing(
            f"the manager server at {where} wants an authkey and this process has none: "
            f"pass authkey=, or set {ENV_AUTHKEY} (the processes that multiprocessing "
            "starts share their parent's key)"
        )
    return AuthkeyRejected(
        f"the manager server at {where} refused the authkey this process gave "
        f"(authkey= or {ENV_AUTHKEY}): the keys differ"
    )


class Link:
    """This process's connections to one server (see the module docstring)."""

    __slots__ = (
        "__weakref__",
        "_anchor",
        "_conns",
        "_later",
        "_local",
        "_lock",
        "address",
        "authkey",
    )

    def __init__(self, address: Address, authkey: bytes) -> None:
        self.address = address
        self.authkey = authkey
        self._lock = threading.Lock()
        self._local = threading.local()
        self._anchor: list[tuple[Connection, int, int]] = []  # [(connection, session, nonce)]
        self._conns: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._later: collections.deque[tuple[str, tuple[object, ...]]] = collections.deque()
        weakref.finalize(self, _close_all, self._anchor, self._conns)

    def call(
        self,
        nonce: int | None,
        method: str,
        args: tuple[object, ...],
        deadline: float | None = None,
        *,
        wait: float = 0.0,
        staged: bool = False,
        patient: bool = False,
        optional: bool = False,
    ) -> object:
        """Call ``method`` on the hub and return its answer, by ``deadline`` at the latest.

        Args:
            nonce: the nonce of the server that holds the channel, or None (any server).
            deadline: a ``time.monotonic()`` time, or None: ``wait`` seconds (how
                long the server may wait before it answers) and ``REPLY_GRACE``.
                A call is always given ``MIN_ANSWER`` seconds at least.
            staged: the call stages a put or a take; an answer that is not empty
                is committed here, and a call with no answer in time has its
                connection dropped, which undoes it (see ``core``).
            patient: with no deadline, wait for the answer as long as the
                connection lives, instead of ``REPLY_GRACE``.
            optional: an answer that comes too late is no error (the call returns
                None): it is read and dropped by the next call.

        Raises:
            ChannelTimeout: ``deadline`` passed first (nothing was done).
            ChannelBroken: the server is gone, or gave no answer within the grace
                (a patient call: its connection broke).
            AuthkeyRejected: the server refused this process's authkey
                (``AuthkeyMissing``: this process was given none).
        """
        now = time.monotonic()
        if deadline is not None:
            due = max(deadline, now + MIN_ANSWER)
        else:
            due = math.inf if patient else now + wait + REPLY_GRACE
        wire: _Wire | None = None
        try:
            wire = self._wire(min(due, now + CONNECT_TIMEOUT))
            if nonce is not None and wire.nonce != nonce:
                where = describe_address(self.address)
                raise error(
                    Condition.BROKEN, Broken.SERVER_GONE, f"another server now listens at {where}"
                )
            wire.bound(_left(due))
            while self._later:
                wire.post(*self._later.popleft())
            answer = wire.exchange(method, args, due)
            if staged and answer:
                wire.post("commit", ())
            return answer
        except ChannelError:
            raise
        except multiprocessing.AuthenticationError as exc:
            raise _refused(self.address, self.authkey) from exc
        except BaseException as exc:
            late = isinstance(exc, _Late) or (isinstance(exc, OSError) and time.monotonic() >= due)
            if wire is not None:
                if optional and isinstance(exc, _Late) and exc.in_step and not wire.owed:
                    wire.owed = 1  # its answer is read and dropped by the next call
                    return None
                self._drop(wire)
            if late:
                if deadline is not None:
                    raise ChannelTimeout(
                        f"no answer from the manager server at {describe_address(self.address)} "
                        "before the deadline; nothing was done"
                    ) from None
                exc = TimeoutError(
                    f"could not connect within {CONNECT_TIMEOUT:.0f} s"
                    if wire is None
                    else f"no answer within {due - now:.0f} s"
                )
            if isinstance(exc, EOFError | OSError):
                raise _gone(self.address, exc) from exc
            raise

    def later(self, method: str, args: tuple[object, ...]) -> None:
        """Send this call, which gets no answer, ahead of the next one.

        Safe from a finalizer, which may run in the middle of another call.
        """
        self._later.append((method, args))

    def nonce(self) -> int:
        """The nonce of the server this link reaches now."""
        return self._session(time.monotonic() + CONNECT_TIMEOUT)[1]

    def _wire(self, due: float) -> _Wire:
        """This thread's connection for its calls; made by ``due``."""
        wire: _Wire | None = getattr(self._local, "wire", None)
        if wire is not None:
            return wire
        session, _ = self._session(due)
        conn = _dial(self.address, self.authkey, due)
        try:
            nonce = expect_int(_exchange(conn, "attach", (session,), due), "attach")
        except BaseException:
            conn.close()
            raise
        wire = self._local.wire = _Wire(conn, nonce)
        self._conns.add(conn)
        return wire

    def _session(self, due: float) -> tuple[int, int]:
        """(session, nonce): open the anchor if there is none, or if the server closed it."""
        if not self._lock.acquire(timeout=_left(due)):
            raise _Late
        try:
            if self._anchor:
                anchor, session, nonce = self._anchor[0]
                if not _hung_up(anchor):
                    return session, nonce
                anchor.close()
                self._anchor.clear()
            anchor = _dial(self.address, self.authkey, due)
            try:
                answer = _exchange(anchor, "hello", (), due)
                nonce, session = expect_pair(answer, "hello")
            except BaseException:
                anchor.close()
                raise
            self._anchor.append((anchor, session, nonce))
            return session, nonce
        finally:
            self._lock.release()

    def _drop(self, wire: _Wire) -> None:
        if getattr(self._local, "wire", None) is wire:
            del self._local.wire
        self._conns.discard(wire.conn)
        wire.conn.close()

    def abandon(self) -> None:
        """In a forked child: close this process's copies of the parent's connections."""
        _close_all(self._anchor, self._conns)


def _hung_up(anchor: Connection) -> bool:
    """The server never writes on an anchor: anything readable means it closed."""
    try:
        return anchor.poll(0)
    except (OSError, EOFError, ValueError):
        return True


def _close_all(
    anchor: list[tuple[Connection, int, int]], conns: weakref.WeakSet[Connection]
) -> None:
    for conn, _, _ in anchor:
        conn.close()
    anchor.clear()
    for conn in list(conns):
        conn.close()


_links: weakref.WeakValueDictionary[tuple[Address, bytes], Link] = weakref.WeakValueDictionary()
_links_lock = threading.Lock()


def link_for(address: Address, authkey: bytes) -> Link:
    """This process's link to the server at ``address``; it lives while a core holds it."""
    key = (address, authkey)
    link = _links.get(key)
    if link is None:
        with _links_lock:
            link = _links.get(key)
            if link is None:
                link = _links[key] = Link(address, authkey)
    return link


def _forget_links_in_child() -> None:
    global _links_lock
    _links_lock = threading.Lock()
    for link in list(_links.values()):
        link.abandon()
    _links.clear()


os.register_at_fork(after_in_child=_forget_links_in_child)
