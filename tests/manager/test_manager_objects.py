"""What a long-running server keeps: only what some connected process can still ask for.

Managed dicts and lists live as long as a proxy of them does, in any process; a
dropped channel's counts, as long as a process that used it is connected.
"""

from __future__ import annotations

import gc
import multiprocessing
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from channels._backends.manager import ManagerChannel
from channels._backends.manager.manager import ChannelManager
from channels._backends.manager.server import ChannelServer

import manager_funcs
from support import WAIT, join, start

KEY = secrets.token_hex(24)


@pytest.fixture
def served() -> Iterator[tuple[ChannelServer, ChannelManager]]:
    """A server in a thread of this process (to count its objects) and a client of it."""
    server = ChannelManager(address=("127.0.0.1", 0), authkey=KEY).get_server()
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        assert server.address is not None
        client = ChannelManager(address=server.address, authkey=KEY)
        client.connect()
        yield server, client
    finally:
        server.stop()
        thread.join(WAIT)


def objects(server: ChannelServer) -> int:
    return len(server.hub._objects._objects)  # pyright: ignore[reportPrivateUsage]


def eventually(predicate: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_an_object_goes_with_its_last_proxy(
    served: tuple[ChannelServer, ChannelManager],
) -> None:
    server, client = served
    made: list[Any] = [client.dict[str, int]({"n": i}) for i in range(50)]
    made += [client.list[int]([i]) for i in range(50)]
    assert objects(server) == 100
    kept = made[0]
    del made
    gc.collect()
    assert kept["n"] == 0  # the next call tells the server which proxies went
    assert eventually(lambda: objects(server) == 1)
    del kept
    gc.collect()
    client.list[int]().append(1)  # made and gone at once
    assert eventually(lambda: objects(server) == 0)


def test_an_object_lives_while_another_process_holds_a_proxy(
    served: tuple[ChannelServer, ChannelManager],
) -> None:
    server, client = served
    shared = client.dict[str, int]()
    ready, report = multiprocessing.Pipe()
    go = multiprocessing.get_context("fork").Event()
    child = start("fork", manager_funcs.hold_a_proxy, shared, report, go)
    try:
        assert ready.poll(WAIT)
        assert ready.recv() == 1
        del shared
        gc.collect()
        client.dict[str, int]()  # tells the server; this one goes at once too
        time.sleep(0.2)
        assert objects(server) == 1  # the child's proxy keeps it
    finally:
        go.set()
        assert join(child) == [0]
        ready.close()
        report.close()
    assert eventually(lambda: objects(server) == 0)  # the child's end released it


def test_a_dropped_channel_is_remembered_only_while_its_users_are_connected(
    served: tuple[ChannelServer, ChannelManager],
) -> None:
    server, client = served
    kept = server.hub._final  # pyright: ignore[reportPrivateUsage]

    def used(i: int) -> ManagerChannel[int]:
        ch = ManagerChannel[int](manager=client, name=f"short-{i}")
        ch.send(i)
        ch.close()
        assert list(ch.receiver) == [i]
        assert ch.receiver.stats().received == 1
        return ch

    held = [used(i) for i in range(20)]
    assert len(kept) == 20
    del held
    gc.collect()  # the last channel goes, and with it this process's connections
    assert eventually(lambda: not kept)
