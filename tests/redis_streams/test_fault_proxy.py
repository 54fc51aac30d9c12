"""The fault proxy itself: it forwards faithfully, and each fault does what it says."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from fault_proxy import FaultProxy, parse_command, resp_end
from redis_server import SKIP_REASON, shared

pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    with FaultProxy(("127.0.0.1", shared().port)) as p:
        yield p


def client(proxy: FaultProxy, timeout: float = 5.0) -> redis.Redis:
    """A redis-py client through the proxy that never retries by itself."""
    return redis.Redis(
        host="127.0.0.1",
        port=proxy.port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def ping(c: redis.Redis) -> bool:
    """PING through ``c`` (redis-py leaves ``ping``'s keyword arguments untyped)."""
    return bool(c.ping())  # pyright: ignore[reportUnknownMemberType]


def key(prefix: str) -> str:
    return f"proxy-{prefix}-{time.monotonic_ns()}"


def test_resp_values_are_delimited_whole_or_not_at_all() -> None:
    reply = b"*2\r\n$3\r\nabc\r\n*1\r\n:5\r\n+OK\r\n"
    assert resp_end(reply) == len(reply) - 5
    assert resp_end(reply, len(reply) - 5) == len(reply)
    for cut in range(1, len(reply) - 5):
        assert resp_end(reply[:cut]) == -1
    assert resp_end(b"*-1\r\n") == 5
    assert resp_end(b"$-1\r\n") == 5
    assert parse_command(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") == ([b"GET", b"k"], 20)
    assert parse_command(b"PING\r\n") == ([b"PING"], 6)
    assert parse_command(b"*2\r\n$3\r\nGET\r\n$1\r\n") is None


def test_it_forwards_commands_and_large_values(proxy: FaultProxy) -> None:
    c = client(proxy)
    try:
        name = key("fwd")
        big = bytes(range(256)) * 20_000  # 5 MB: crosses many reads and the high-water mark
        assert c.set(name, big)
        assert c.get(name) == big
        assert c.delete(name) == 1
    finally:
        c.close()


def test_a_dropped_reply_with_a_cut_leaves_the_command_done(proxy: FaultProxy) -> None:
    c = client(proxy)
    name = key("drop")
    try:
        assert ping(c)
        rule = proxy.drop_reply(lambda words: words[0].upper() == b"INCRBY")
        with pytest.raises(redis.ConnectionError):
            c.incr(name)
        assert rule.wait(5)
        assert rule.commands == [[b"INCRBY", name.encode(), b"1"]]
        assert c.incr(name) == 2  # the first one ran although its reply was lost
        assert proxy.cuts == 1
    finally:
        c.delete(name)
        c.close()


def test_a_dropped_reply_kept_leaves_the_client_waiting(proxy: FaultProxy) -> None:
    c = client(proxy, timeout=0.3)
    name = key("keep")
    try:
        proxy.drop_reply(name.encode(), after="keep")
        with pytest.raises(redis.TimeoutError):
            c.set(name, "v")
        assert proxy.cuts == 0  # the connection stayed open; the client gave up on it
        assert c.get(name) == b"v"
    finally:
        c.delete(name)
        c.close()


def test_errors_and_empty_reads_are_passed_over_unless_asked(proxy: FaultProxy) -> None:
    c = client(proxy)
    name, other = key("errors"), key("string")
    try:
        c.set(other, "not a stream")
        rule = proxy.drop_reply(lambda words: words[0] == b"XREAD")
        with pytest.raises(redis.ResponseError):  # an error reply is not the one aimed at
            c.xread({other: "0-0"}, block=50)
        assert not c.xread({name: "0-0"}, block=50)  # an empty read passes too
        assert not rule.done.is_set()
        c.xadd(name, {"f": "v"}, id="1-0")
        with pytest.raises(redis.ConnectionError):  # the first read that carries something
            c.xread({name: "0-0"}, block=50)
        assert rule.done.is_set()
        assert c.xread({name: "0-0"}, block=50)
    finally:
        c.delete(name, other)
        c.close()


def test_a_drop_then_reject_keeps_the_server_away_until_healed(proxy: FaultProxy) -> None:
    c = client(proxy)
    name = key("reject")
    try:
        proxy.drop_reply(name.encode(), after="reject")
        with pytest.raises(redis.ConnectionError):
            c.set(name, "v")
        with pytest.raises(redis.ConnectionError):
            ping(c)
        proxy.heal()
        assert c.get(name) == b"v"
    finally:
        c.delete(name)
        c.close()


def test_cut_closes_every_connection_and_new_ones_work(proxy: FaultProxy) -> None:
    raws = [socket.create_connection(("127.0.0.1", proxy.port), timeout=5) for _ in range(3)]
    try:
        for raw in raws:
            raw.sendall(b"PING\r\n")
            assert raw.recv(64) == b"+PONG\r\n"
        assert proxy.connections == 3
        proxy.cut()
        assert proxy.connections == 0
        for raw in raws:
            assert raw.recv(64) == b""  # closed
        c = client(proxy)
        assert ping(c)  # a fresh connection
        c.close()
    finally:
        for raw in raws:
            raw.close()


def test_delay_holds_every_reply(proxy: FaultProxy) -> None:
    c = client(proxy)
    try:
        assert ping(c)
        proxy.delay(0.3)
        began = time.monotonic()
        assert ping(c)
        assert time.monotonic() - began >= 0.3
        proxy.heal()
        assert ping(c)
    finally:
        c.close()


def test_a_black_hole_forwards_nothing_until_healed() -> None:
    with FaultProxy(("127.0.0.1", shared().port)) as proxy:
        raw = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        try:
            raw.sendall(b"PING\r\n")
            assert raw.recv(64) == b"+PONG\r\n"
            proxy.blackhole()
            raw.sendall(b"PING\r\n")
            raw.settimeout(0.3)
            with pytest.raises(TimeoutError):
                raw.recv(64)
            late = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
            late.sendall(b"PING\r\n")  # accepted, and nothing comes back
            late.settimeout(0.3)
            with pytest.raises(TimeoutError):
                late.recv(64)
            proxy.heal()
            raw.settimeout(5)
            late.settimeout(5)
            assert raw.recv(64) == b"+PONG\r\n"  # the bytes held during the fault flow again
            assert late.recv(64) == b"+PONG\r\n"
            late.close()
        finally:
            raw.close()


def test_rejected_connections_are_reset(proxy: FaultProxy) -> None:
    proxy.reject()
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as raw:
            raw.sendall(b"PING\r\n")
            reply = raw.recv(64)
    except (ConnectionResetError, BrokenPipeError):  # the reset shows at any of the calls
        reply = None
    assert reply is None
    proxy.heal()
    c = client(proxy)
    try:
        assert ping(c)
    finally:
        c.close()


def test_stop_closes_everything_and_ends_its_thread() -> None:
    proxy = FaultProxy(("127.0.0.1", shared().port)).start()
    c = client(proxy)
    try:
        assert ping(c)
        before = threading.active_count()
        proxy.stop()
        assert threading.active_count() == before - 1
        with pytest.raises(redis.ConnectionError):
            ping(c)
    finally:
        c.close()
