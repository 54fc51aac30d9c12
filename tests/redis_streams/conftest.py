"""Fixtures of the redis tests: private servers and fault proxies, gone at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from fault_proxy import FaultProxy
from redis_server import RedisServer

MakeServer = Callable[..., RedisServer]
MakeProxy = Callable[[RedisServer], FaultProxy]


@pytest.fixture
def make_server() -> Iterator[MakeServer]:
    """Start private redis-servers (``RedisServer`` options); each is removed at teardown."""
    made: list[RedisServer] = []

    def make(**options: object) -> RedisServer:
        server = RedisServer(**options)  # type: ignore[arg-type]
        made.append(server)
        return server.start()

    yield make
    for server in made:
        server.remove()


@pytest.fixture
def make_proxy() -> Iterator[MakeProxy]:
    """Start fault proxies in front of servers; each is stopped at teardown."""
    made: list[FaultProxy] = []

    def make(server: RedisServer) -> FaultProxy:
        proxy = FaultProxy(("127.0.0.1", server.port)).start()
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.stop()
