"""A TCP proxy between the tests and their redis-server that injects network faults on command.

It listens on 127.0.0.1 only and forwards every connection to one upstream
address. One thread runs every connection through a selector, so it is bounded
(one thread, a few buffers per connection) and stops with ``stop()`` or at the
end of a ``with`` block. It reads the RESP protocol in both directions, so a
test can aim at one reply: the reply to the next command that matches.

Faults, each until ``heal()`` unless said otherwise:

- ``drop_reply(...)``: swallow the whole reply to the next matching command,
  then ``after="cut"`` closes that connection (the client sees the connection
  drop: the command's fate is unknown to it), ``"keep"`` keeps it open (the
  client waits for a reply that never comes, until its socket timeout), or
  ``"reject"`` closes it and rejects every connection from then on.
- ``cut()``: close every connection now (new ones are accepted).
- ``delay(seconds)``: hold every server reply that long before passing it on.
- ``blackhole()``: accept connections but forward nothing either way (the bytes
  wait in the kernel's buffers and flow again after ``heal()``, as after a
  healed partition).
- ``reject()``: close every connection and close new ones at once, as a
  server that is down (the client sees a reset, not a refused connect).
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Drop", "FaultProxy"]

After = Literal["cut", "keep", "reject"]
#: Bytes read from a socket at once; also how far ahead of the other side one direction may run.
CHUNK = 1 << 16
#: Past this many unsent bytes in one direction, the proxy stops reading that direction.
HIGH_WATER = 4 << 20


def _line_end(buf: bytes | bytearray, pos: int) -> int:
    """Where the CRLF that ends the line starting at ``pos`` ends, or -1 if it is not all here."""
    end = buf.find(b"\r\n", pos)
    return -1 if end < 0 else end + 2


def resp_end(buf: bytes | bytearray, pos: int = 0) -> int:
    """The end of the RESP value (RESP2 or RESP3) at ``pos``, or -1 if it is not all here."""
    if pos >= len(buf):
        return -1
    kind = buf[pos : pos + 1]
    line = _line_end(buf, pos)
    if line < 0:
        return -1
    if kind in b"+-:_,#(":
        return line
    size = int(buf[pos + 1 : line - 2])
    if kind in b"$=!":
        if size < 0:
            return line
        end = line + size + 2
        return end if end <= len(buf) else -1
    if kind in b"*~>%|":
        if size < 0:
            return line
        count = size * 2 if kind in b"%|" else size
        at = line
        for _ in range(count):
            at = resp_end(buf, at)
            if at < 0:
                return -1
        return at
    raise ValueError(f"not RESP: {bytes(buf[pos : pos + 16])!r}")


def parse_command(buf: bytes | bytearray, pos: int = 0) -> tuple[list[bytes], int] | None:
    """The command (an array of bulk strings, or an inline line) at ``pos`` and where it ends."""
    end = resp_end(buf, pos) if buf[pos : pos + 1] == b"*" else _line_end(buf, pos)
    if end < 0:
        return None
    if buf[pos : pos + 1] != b"*":
        return bytes(buf[pos : end - 2]).split(), end
    words: list[bytes] = []
    at = _line_end(buf, pos)
    while at < end:
        line = _line_end(buf, at)
        size = int(buf[at + 1 : line - 2])
        words.append(bytes(buf[line : line + size]))
        at = line + size + 2
    return words, end


#: Replies that carry nothing, in RESP2 and RESP3: a blocking read that timed out, say.
_EMPTY = (b"*-1\r\n", b"_\r\n", b"$-1\r\n", b"*0\r\n", b"%0\r\n", b"~0\r\n")


@dataclass
class Drop:
    """A rule: swallow the reply to the next command that matches, ``count`` times."""

    match: Callable[[list[bytes]], bool]
    after: After
    #: Only a reply that is not an error (e.g. NOSCRIPT, answered before a script runs).
    skip_errors: bool
    #: Only a reply that carries something (not a null or empty array: a blocking read's timeout).
    nonempty: bool
    count: int
    dropped: int = 0
    #: The commands whose replies were swallowed.
    commands: list[list[bytes]] = field(default_factory=list[list[bytes]])
    done: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float) -> bool:
        """Wait until every reply this rule aims at was swallowed; whether it was."""
        return self.done.wait(timeout)

    def wants(self, reply: bytes) -> bool:
        if self.skip_errors and reply[:1] == b"-":
            return False
        return not (self.nonempty and reply in _EMPTY)


class _Conn:
    """One client connection and its upstream twin, with what waits to go each way."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client, self.server = client, server
        self.to_server = bytearray()
        self.to_client = bytearray()
        self.held: deque[tuple[float, bytes]] = deque()  # delayed replies: (due, bytes)
        self.requests = bytearray()  # client bytes not yet parsed into commands
        self.replies = bytearray()  # server bytes not yet parsed into replies
        self.pending: deque[list[bytes]] = deque()  # commands awaiting their reply, in order
        self.swallowing: Drop | None = None
        self.closed = False


class FaultProxy:
    """A fault-injecting proxy from ``127.0.0.1:port`` to ``upstream`` (see the module doc)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._lock = threading.Lock()
        self._conns: list[_Conn] = []
        self._rules: list[Drop] = []
        self._delay = 0.0
        self._blackhole = False
        self._reject = False
        self._cut_now = False
        self._stopping = False
        self._todo: deque[tuple[Callable[[], None], threading.Event]] = deque()
        #: How many connections the proxy accepted, and how many it closed on purpose.
        self.accepted = 0
        self.cuts = 0
        self._seen: Counter[bytes] = Counter()
        self._thread = threading.Thread(target=self._loop, name="fault-proxy", daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, name: str) -> str:
        return f"redis://{self.address}/{name}"

    def start(self) -> FaultProxy:
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every connection and the listener; wait for the thread (bounded)."""
        self._command(lambda: setattr(self, "_stopping", True))
        self._thread.join(10)
        assert not self._thread.is_alive(), "the fault proxy did not stop"

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- commands ----------------------------------------------------------------------

    def drop_reply(
        self,
        match: Callable[[list[bytes]], bool] | bytes,
        *,
        after: After = "cut",
        skip_errors: bool = True,
        nonempty: bool = True,
        count: int = 1,
    ) -> Drop:
        """Swallow the reply to the next ``count`` commands that ``match`` (a callable on the
        command's words, or bytes that one of its words must contain)."""
        if isinstance(match, bytes):
            needle = match
            match = lambda words: any(needle in word for word in words)  # noqa: E731
        rule = Drop(match, after, skip_errors, nonempty, count)
        self._command(lambda: self._rules.append(rule))
        return rule

    def cut(self) -> None:
        """Close every connection now."""
        self._command(lambda: setattr(self, "_cut_now", True))

    def delay(self, seconds: float) -> None:
        """Hold each server reply ``seconds`` before passing it on (0: no delay)."""
        self._command(lambda: setattr(self, "_delay", max(0.0, seconds)))

    def blackhole(self) -> None:
        """Forward nothing either way, on every connection, until ``heal()``."""
        self._command(lambda: setattr(self, "_blackhole", True))

    def reject(self) -> None:
        """Close every connection, and each new one at once, until ``heal()``."""

        def go() -> None:
            self._reject = True
            self._cut_now = True

        self._command(go)

    def heal(self) -> None:
        """End every fault: no rules, no delay, no black hole, no rejection."""

        def go() -> None:
            self._rules.clear()
            self._delay = 0.0
            self._blackhole = False
            self._reject = False

        self._command(go)

    def seen(self, command: bytes) -> int:
        """How many times a client sent ``command`` (e.g. ``b"XREADGROUP"``) through the proxy."""
        with self._lock:
            return self._seen[command.upper()]

    @property
    def connections(self) -> int:
        """Connections open through the proxy now."""
        with self._lock:
            return len(self._conns)

    def _command(self, change: Callable[[], None]) -> None:
        """Have the proxy thread make ``change`` and wait until it took effect."""
        done = threading.Event()
        with self._lock:
            if self._stopping or not self._thread.is_alive():
                change()
                return
            self._todo.append((change, done))
        self._wake_w.send(b"x")
        assert done.wait(10), "the fault proxy did not take a command"

    # -- the loop ----------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while True:
                with self._lock:
                    while self._todo:
                        change, done = self._todo.popleft()
                        change()
                        done.set()
                    if self._stopping:
                        break
                    if self._cut_now:
                        self._cut_now = False
                        for conn in list(self._conns):
                            self._close(conn, on_purpose=True)
                    self._interest()
                    timeout = self._next_due()
                for key, events in self._selector.select(timeout):
                    with self._lock:
                        self._event(key, events)
                with self._lock:
                    self._release_held()
        finally:
            with self._lock:
                for conn in list(self._conns):
                    self._close(conn, on_purpose=False)
            self._selector.close()
            self._listener.close()
            self._wake_r.close()
            self._wake_w.close()

    def _interest(self) -> None:
        for conn in self._conns:
            for sock, inbox, outbox in (
                (conn.client, conn.to_server, conn.to_client),
                (conn.server, conn.to_client, conn.to_server),
            ):
                events = 0
                if not self._blackhole:
                    if len(inbox) < HIGH_WATER and len(conn.held) < HIGH_WATER // CHUNK:
                        events |= selectors.EVENT_READ
                    if outbox:
                        events |= selectors.EVENT_WRITE
                self._watch(sock, events, conn)

    def _watch(self, sock: socket.socket, events: int, conn: _Conn) -> None:
        """Watch ``sock`` for ``events`` (none: not at all, so a parked socket costs nothing)."""
        try:
            key = self._selector.get_key(sock)
        except KeyError:
            if events:
                self._selector.register(sock, events, conn)
            return
        if not events:
            self._selector.unregister(sock)
        elif key.events != events:
            self._selector.modify(sock, events, conn)

    def _next_due(self) -> float | None:
        dues = [conn.held[0][0] for conn in self._conns if conn.held]
        if not dues:
            return None
        return max(0.0, min(dues) - time.monotonic())

    def _event(self, key: selectors.SelectorKey, events: int) -> None:
        if key.fileobj is self._wake_r:
            self._wake_r.recv(4096)
            return
        if key.fileobj is self._listener:
            self._accept()
            return
        conn = key.data
        if not isinstance(conn, _Conn) or conn.closed:
            return  # closed by an earlier event of this round
        sock = key.fileobj
        assert isinstance(sock, socket.socket)
        try:
            if events & selectors.EVENT_WRITE:
                outbox = conn.to_client if sock is conn.client else conn.to_server
                sent = sock.send(outbox)
                del outbox[:sent]
            if events & selectors.EVENT_READ:
                data = sock.recv(CHUNK)
                if not data:
                    self._close(conn, on_purpose=False)
                elif sock is conn.client:
                    self._from_client(conn, data)
                else:
                    self._from_server(conn, data)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._close(conn, on_purpose=False)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        if self._reject:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()  # a reset, as from a server that is not there
            return
        try:
            server = socket.create_connection(self.upstream, timeout=2)
        except OSError:
            client.close()
            return
        for sock in (client, server):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Conn(client, server)
        self._selector.register(client, selectors.EVENT_READ, conn)
        self._selector.register(server, selectors.EVENT_READ, conn)
        self._conns.append(conn)
        self.accepted += 1

    def _from_client(self, conn: _Conn, data: bytes) -> None:
        conn.to_server += data
        conn.requests += data
        at = 0
        while at < len(conn.requests):
            parsed = parse_command(conn.requests, at)
            if parsed is None:
                break
            words, at = parsed
            if words:
                conn.pending.append(words)
                self._seen[words[0].upper()] += 1
        del conn.requests[:at]

    def _from_server(self, conn: _Conn, data: bytes) -> None:
        conn.replies += data
        at = 0
        passed = bytearray()
        after: After | None = None
        while at < len(conn.replies):
            end = resp_end(conn.replies, at)
            if end < 0:
                break
            reply = bytes(conn.replies[at:end])
            at = end
            if reply[:1] == b">":  # a RESP3 push: out of band, answers no command
                passed += reply
                continue
            command = conn.pending.popleft() if conn.pending else []
            rule = self._rule_for(command, reply)
            if rule is None:
                passed += reply
                continue
            rule.dropped += 1
            rule.commands.append(command)
            if rule.dropped >= rule.count:
                self._rules.remove(rule)
                rule.done.set()
            if rule.after != "keep":
                after = rule.after
                break
        del conn.replies[:at]
        if after is not None:  # the lost reply, and any behind it, go with the connection
            if after == "reject":
                self._reject = True
            self._close(conn, on_purpose=True)
            return
        self._forward(conn, bytes(passed))

    def _rule_for(self, command: list[bytes], reply: bytes) -> Drop | None:
        for rule in self._rules:
            if command and rule.wants(reply) and rule.match(command):
                return rule
        return None

    def _forward(self, conn: _Conn, data: bytes) -> None:
        if not data:
            return
        if self._delay > 0 or conn.held:
            conn.held.append((time.monotonic() + self._delay, data))
        else:
            conn.to_client += data

    def _release_held(self) -> None:
        now = time.monotonic()
        for conn in self._conns:
            while conn.held and conn.held[0][0] <= now:
                conn.to_client += conn.held.popleft()[1]

    def _close(self, conn: _Conn, *, on_purpose: bool) -> None:
        if conn.closed:
            return
        conn.closed = True
        if on_purpose:
            self.cuts += 1
        for sock in (conn.client, conn.server):
            self._watch(sock, 0, conn)
            sock.close()
        self._conns.remove(conn)
