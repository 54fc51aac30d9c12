"""How a client process reaches a manager server: addresses, authkeys and connections.

Each process keeps, per server, one ``Link``: an idle *anchor* connection,
whose closing tells the server that the process is gone, and one connection
per thread for its calls (see ``server``). A call that fails because
the server went away raises ``ChannelBroken`` at once; a call interrupted half
way (by KeyboardInterrupt, say) drops its connection rather than leave it out
of step. A forked child closes its copies of the parent's connections and
makes its own.

Authkeys are never pickled. Where a process's key for a server comes from is
recorded instead (``KEY_GIVEN``, ``KEY_ENV``, ``KEY_PROCESS``), so that a
process that unpickles a channel looks in the same place.
"""

from __future__ import annotations

import collections
import contextlib
import math
import multiprocessing
import os
import socket
import struct
import threading
import time
import weakref
from collections.abc import Sequence
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from typing import cast

from ..._engine.ledger import BROKEN_SERVER_GONE, WHY
from ..._errors import (
    AuthkeyMissing,
    AuthkeyRejected,
    ChannelBroken,
    ChannelError,
    ChannelTimeout,
    ConfigError,
)
from .server import HUB_ID, borrowed_socket, describe_address

__all__ = [
    "CONNECT_TIMEOUT",
    "ENV_AUTHKEY",
    "KEY_ENV",
    "KEY_GIVEN",
    "KEY_PROCESS",
    "MIN_ANSWER",
    "REPLY_GRACE",
    "Address",
    "Link",
    "connect",
    "env_authkey",
    "expect_int",
    "expect_pair",
    "key_for",
    "key_source",
    "link_for",
    "parse_address",
    "process_key",
    "to_authkey",
]

#: The environment variable a process reads its authkey from when it was given none.
ENV_AUTHKEY = "CHANNELS_AUTHKEY"
#: How long connecting to a server and proving the key may take, in seconds.
CONNECT_TIMEOUT = 10.0
#: How much longer than its own wait a server may take to answer before it counts as gone.
REPLY_GRACE = 20.0
#: The least time a call is given for its answer, even when its deadline is nearer or past.
MIN_ANSWER = 0.05

#: A server address: (host, port), or the path of a Unix socket.
Address = tuple[str, int] | str

KEY_GIVEN, KEY_ENV, KEY_PROCESS = "given", "env", "process"


# -- addresses and keys ----------------------------------------------------------------


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


def to_authkey(value: object) -> bytes:
    """An authkey given as bytes or as text (UTF-8)."""
    if isinstance(value, bytes | bytearray):
        key = bytes(value)
    elif isinstance(value, str):
        key = value.encode()
    else:
        raise ConfigError(f"an authkey is bytes or text, not {type(value).__name__}")
    if not key:
        raise ConfigError("the authkey is empty")
    return key


def env_authkey() -> bytes | None:
    """The authkey in ``CHANNELS_AUTHKEY``, if it is set."""
    text = os.environ.get(ENV_AUTHKEY)
    return text.encode() if text else None


def process_key() -> bytes:
    """This process's ``multiprocessing`` authkey, which the children it starts inherit."""
    return bytes(multiprocessing.current_process().authkey)


#: Keys this process was given explicitly, by server address (never pickled).
_given_keys: dict[Address, bytes] = {}


def key_source(address: Address, key: bytes, *, given: bool) -> str:
    """Record where ``key`` came from; a key given explicitly is remembered for ``address``."""
    if key == process_key():
        return KEY_PROCESS
    if not given and key == env_authkey():
        return KEY_ENV
    _given_keys[address] = key
    return KEY_GIVEN


def key_for(address: Address, source: str) -> bytes:
    """This process's key for ``address``, looked up where the channel's creator found it."""
    if source == KEY_GIVEN and address in _given_keys:
        return _given_keys[address]
    if source in (KEY_GIVEN, KEY_ENV):
        key = env_authkey()
        if key is not None:
            return key
    return process_key()


# -- connections ------------------------------------------------------------------------


def _gone(address: Address, exc: BaseException) -> ChannelBroken:
    detail = str(exc) or type(exc).__name__
    return ChannelBroken(f"{WHY[BROKEN_SERVER_GONE]} ({describe_address(address)}: {detail})")


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


def set_io_timeout(conn: Connection, seconds: float) -> None:
    """Bound how long one read or write on ``conn`` may block (0: no bound)."""
    whole = int(seconds)
    micros = 0 if not seconds else max(1, int((seconds - whole) * 1e6))
    value = struct.pack("ll", whole, micros)
    with borrowed_socket(conn) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)


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
    """The next answer on ``conn`` (by ``due``, or ever); re-raises the error the server raised."""
    if due != math.inf and not conn.poll(max(0.0, due - time.monotonic())):
        raise _Late(in_step=True)
    kind, result = conn.recv()
    if kind == "#RETURN":
        return result
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
                raise ChannelBroken(
                    f"{WHY[BROKEN_SERVER_GONE]} (another server now listens at "
                    f"{describe_address(self.address)})"
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
