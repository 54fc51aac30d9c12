"""A manager server under peers that never prove the key: clients that do still get in.

The server may open ``DESCRIPTORS`` files and sockets, as in a small container:
fewer than the peers of a flood and the clients together, so it must cut the
peers off, not hold them all.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import cast

import pytest

import channels
from channels._backends.manager.manager import ChannelManager

import manager_funcs
from support import WAIT

KEY = secrets.token_hex(24)

#: Peers that dribble their answer to the challenge, and how often each sends a byte.
PEERS = 250
DRIBBLE = 2.0
#: Clients that know the key, arriving once the flood is on.
CLIENTS = 8
#: The most files and sockets the server process may hold.
DESCRIPTORS = 256


class Slowloris:
    """``PEERS`` connections that each send one byte of a handshake every ``DRIBBLE`` s.

    A peer the server cuts off connects again at once, as a real flood would.
    """

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.socks: dict[socket.socket, float] = {}  # each peer, and when it sends next
        self._left: dict[socket.socket, bytes] = {}  # what each peer has still to send
        self.cut_off = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> Slowloris:
        for _ in range(PEERS):
            self._connect()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        for sock in self.socks:
            sock.close()

    def _connect(self) -> None:
        with contextlib.suppress(OSError):
            sock = socket.create_connection(self.address, timeout=WAIT)
            sock.setblocking(False)
            # A length that promises a long answer, then its bytes, one at a time.
            self.socks[sock] = 0.0
            self._left[sock] = struct.pack("!i", 200) + bytes(200)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            readable, _, _ = select.select(list(self.socks), [], [], 0)
            for sock in readable:  # the challenge, or the server hanging up
                try:
                    gone = not sock.recv(4096)
                except OSError:
                    gone = True
                if gone:
                    self.cut_off += 1
                    del self.socks[sock]
                    self._left.pop(sock, None)
                    sock.close()
                    self._connect()
            now = time.monotonic()
            for sock, due in list(self.socks.items()):
                left = self._left.get(sock, b"")
                if due <= now and left:
                    with contextlib.suppress(OSError):
                        sock.send(left[:1])
                        self._left[sock] = left[1:]
                    self.socks[sock] = now + DRIBBLE


@pytest.fixture
def server() -> Iterator[ChannelManager]:
    manager = ChannelManager(address=("127.0.0.1", 0), authkey=KEY)
    manager.start(manager_funcs.limit_descriptors, (DESCRIPTORS,))
    with manager:
        yield manager


@pytest.mark.extended
def test_clients_get_in_during_a_slowloris_flood(server: ChannelManager) -> None:
    host, port = cast(tuple[str, int], server.address)
    url = f"manager://{host}:{port}/legit"
    results: list[tuple[str, float]] = []

    def client() -> None:
        started = time.monotonic()
        try:
            with channels.open_channel[int](url, authkey=KEY) as ch:
                ch.send(1, timeout=WAIT)
                ch.recv(timeout=WAIT)
        except Exception as exc:
            results.append((type(exc).__name__, time.monotonic() - started))
            return
        results.append(("ok", time.monotonic() - started))

    with Slowloris((host, port)) as flood:
        time.sleep(3 * DRIBBLE)  # every peer has begun to dribble; the server holds them
        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(2 * WAIT)
        held = len(flood.socks)
    assert [outcome for outcome, _ in results] == ["ok"] * CLIENTS, results
    assert max(took for _, took in results) < 10, results
    assert held > PEERS * 0.9  # the flood was on all along (a reconnection may fail)


def test_a_handshake_has_a_deadline_in_all_not_per_read() -> None:
    server = ChannelManager(address=("127.0.0.1", 0), authkey=KEY).get_server()
    server.handshake_timeout = 0.5
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        address = cast(tuple[str, int], server.address)
        with socket.create_connection(address, timeout=WAIT) as peer:
            peer.recv(4096)  # the challenge
            started = time.monotonic()
            answer = struct.pack("!i", 200) + bytes(200)
            cut_off = False
            for byte in answer:  # far slower in all than the deadline, quick for each read
                try:
                    peer.sendall(bytes([byte]))
                    time.sleep(0.1)
                    readable, _, _ = select.select([peer], [], [], 0)
                    if readable and not peer.recv(4096):
                        cut_off = True
                        break
                except OSError:
                    cut_off = True
                    break
            took = time.monotonic() - started
        assert cut_off
        assert took < 5
    finally:
        server.stop()
        thread.join(WAIT)


def test_a_flood_of_refusals_is_not_a_flood_of_log_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="channels")
    server = ChannelManager(address=("127.0.0.1", 0), authkey=KEY).get_server()
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        address = cast(tuple[str, int], server.address)
        for _ in range(60):  # each hangs up in the middle of its answer
            with socket.create_connection(address, timeout=WAIT) as peer:
                peer.recv(4096)
                peer.sendall(struct.pack("!i", 200) + bytes(10))
        with socket.create_connection(address, timeout=WAIT) as last:
            last.recv(4096)
            last.sendall(struct.pack("!i", 32) + bytes(32))  # a wrong answer
            last.recv(4096)
    finally:
        server.stop()
        thread.join(WAIT)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert 0 < len(lines) <= 20 + 1
    assert all(line.startswith("refused a connection from 127.0.0.1:") for line in lines)
