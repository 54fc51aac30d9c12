"""The redis backend against a real private redis-server: the contract, leases, batches."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import channels
from channels import (
    ChannelBroken,
    ChannelClosed,
    ChannelError,
    ChannelTimeout,
    ConfigError,
    EndOfChannel,
    WouldBlock,
)
from channels._codec.payloads import plain

import children
from redis_server import SKIP_REASON, RedisServer, core_of, shared
from support import WAIT, drain, join, start

pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")


@pytest.fixture
def server() -> RedisServer:
    return shared()


def unique(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns()}"


def test_the_end_reaches_every_receiver_after_every_item(server: RedisServer) -> None:
    url = server.url(unique("end"))
    receivers = [channels.open_receiver[int](url) for _ in range(3)]
    reports: list[tuple[list[int], str]] = []

    def receive(rx: channels.Receiver[int]) -> None:
        reports.append(drain(rx))

    threads = [threading.Thread(target=receive, args=(rx,)) for rx in receivers]
    for t in threads:
        t.start()
    with channels.open_sender[int](url) as tx:
        for i in range(300):
            tx.send(i)
    for t in threads:
        t.join(WAIT)
    assert sorted(stop for _, stop in reports) == ["EndOfChannel"] * 3
    got = [i for items, _ in reports for i in items]
    assert sorted(got) == list(range(300))
    for items, _ in reports:  # FIFO per sender, as each receiver saw them
        assert items == sorted(items)


def test_keys_are_removed_once_the_channel_ended_and_was_drained(server: RedisServer) -> None:
    name = unique("keys")
    ch = channels.open_channel[str](server.url(name), linger=30)
    ch.send("a")
    ch.close()
    assert len(server.keys(f"*{{{name}}}*")) > 2
    assert list(ch) == ["a"]
    left = server.keys(f"*{{{name}}}*")
    assert left == [f"channels:{{{name}}}:bell", f"channels:{{{name}}}:tomb"]
    client = server.client()
    try:
        assert all(0 < client.ttl(key) <= 30 for key in left)
    finally:
        client.close()


def test_linger_is_the_channel_s_and_a_sender_asking_for_another_is_refused(
    server: RedisServer,
) -> None:
    url = server.url(unique("linger"))
    first = channels.open_sender[str](url, linger=30)
    try:
        with pytest.raises(ConfigError, match=r"linger=30.*asked for.*linger=60"):
            channels.open_sender[str](url, linger=60)
        channels.open_sender[str](url).close()
        channels.open_sender[str](url, linger=30).close()
        channels.open_sender[str](url, linger=29.5).close()  # whole seconds on the server
    finally:
        first.close()


def test_a_receiver_that_joins_first_waits_and_open_sender_refuses_an_ended_channel(
    server: RedisServer,
) -> None:
    url = server.url(unique("late"))
    rx = channels.open_receiver[str](url)
    with pytest.raises(ChannelTimeout):
        rx.recv(timeout=0.2)
    tx = channels.open_sender[str](url)
    other = channels.open_sender[str](url)
    tx.send("one")
    tx.close()
    assert rx.recv(timeout=WAIT) == "one"
    with pytest.raises(ChannelTimeout):  # `other` is still open
        rx.recv(timeout=0.2)
    other.close()
    with pytest.raises(EndOfChannel):
        rx.recv(timeout=WAIT)
    with pytest.raises(ChannelClosed):
        channels.open_sender[str](url)
    with pytest.raises(ChannelClosed):
        channels.open_channel[str](url)
    with pytest.raises(EndOfChannel):  # a late receiver sees the end too
        channels.open_receiver[str](url).recv(timeout=WAIT)


@pytest.mark.parametrize("backend", ["pipe", "queue", "simplequeue"])
def test_local_backends_have_no_address(backend: str) -> None:
    with pytest.raises(ConfigError, match="use open_channel"):
        channels.open_sender[int](backend)
    with pytest.raises(ConfigError, match="use open_channel"):
        channels.open_receiver[int](backend)


#: Where no server listens: an option refused there is refused before any connection.
NOWHERE = "redis://127.0.0.1:1/refused"


@pytest.mark.parametrize(
    "opening",
    [
        lambda: channels.open_channel[int](NOWHERE, context="teleport", reconnect=0.2),
        lambda: channels.open_channel[int](f"{NOWHERE}?context=teleport&reconnect=0.2"),
        lambda: channels.open_sender[int](NOWHERE, context="teleport", reconnect=0.2),
        lambda: channels.open_receiver[int](NOWHERE, context="teleport", reconnect=0.2),
        lambda: channels.open_channel[int]("rediss://127.0.0.1:1/x", context="teleport"),
        lambda: channels.RedisChannel[int](address="127.0.0.1:1", context="teleport"),
    ],
    ids=["open_channel", "url", "open_sender", "open_receiver", "rediss", "class"],
)
def test_a_bad_start_method_is_refused_before_the_server_is_reached(
    opening: Callable[[], object],
) -> None:
    """``context`` is a common option (a redis channel works under every start method):
    checked like on every process backend, at the call that gave it."""
    with pytest.raises(ConfigError, match=r"unknown start method 'teleport'"):
        opening()


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"address": "127.0.0.1:1", "socket": "/nonexistent.sock"}, "address or a Unix socket"),
        ({"socket": "/nonexistent.sock", "tls": True}, "not available over a Unix socket"),
        ({"address": "127.0.0.1:1", "tls_ca": "ca.pem"}, "'tls_ca' applies only over TLS"),
        ({"address": "127.0.0.1:1", "tls_key": "key.pem"}, "'tls_key' applies only over TLS"),
        ({"address": "127.0.0.1:1", "tls_verify": False}, "'tls_verify' applies only over TLS"),
    ],
)
def test_options_that_would_go_unused_are_refused(options: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        channels.open_channel[int]("redis", reconnect=0.2, **options)


def test_a_unix_socket_under_rediss_is_refused() -> None:
    with pytest.raises(ConfigError, match="rediss://"):
        channels.open_channel[int]("rediss:///x?socket=/nonexistent.sock", reconnect=0.2)


def test_maxsize_is_backpressure_and_nothing_is_trimmed(server: RedisServer) -> None:
    name = unique("full")
    ch = channels.open_channel[int](server.url(name), maxsize=3)
    core = core_of(ch)
    assert core.put(core_of(ch).first_token, [pickle.dumps(i) for i in range(5)], None) == 3
    with pytest.raises(WouldBlock):
        ch.send_nowait(9)
    with pytest.raises(ChannelTimeout):
        ch.send(9, timeout=0.2)
    client = server.client()
    try:
        assert client.xlen(f"channels:{{{name}}}:items") == 3
    finally:
        client.close()
    with pytest.raises(ConfigError, match="maxsize=3"):
        channels.open_sender[int](server.url(name), maxsize=5)
    done = threading.Event()

    def send_late() -> None:
        ch.send(3, timeout=WAIT)
        done.set()

    thread = threading.Thread(target=send_late)
    thread.start()
    assert not done.wait(0.3)
    assert ch.recv(timeout=WAIT) == 0
    assert done.wait(WAIT)
    thread.join(WAIT)
    ch.close()
    assert list(ch) == [1, 2, 3]


def test_batches_go_in_one_call_and_keep_their_order(server: RedisServer) -> None:
    ch = channels.open_channel[int](server.url(unique("batch")))
    core = core_of(ch)
    sent = 0
    while sent < 1000:
        sent += core.put(core.first_token, [pickle.dumps(i) for i in range(sent, sent + 100)], None)
    got: list[int] = []
    while len(got) < 1000:
        batch = core.take(100, None)
        assert 1 <= len(batch) <= 100
        got.extend(pickle.loads(plain(b)) for b in batch)
    assert got == list(range(1000))
    assert core.take(100, None) == []
    ch.close()
    with pytest.raises(EndOfChannel):
        core.take(100, None)


def test_stats_count_what_happened(server: RedisServer) -> None:
    url = server.url(unique("stats"))
    ch = channels.open_channel[int](url)
    clone = ch.clone()
    for i in range(5):
        ch.send(i)
    assert ch.recv(timeout=WAIT) == 0
    stats = core_of(ch).stats()
    assert (stats.waiting, stats.sent, stats.received) == (4, 5, 1)
    assert (stats.senders, stats.receivers) == (2, 1)
    assert (stats.unfinished, stats.ended, stats.broken) == (0, False, False)
    clone.close()
    ch.close()
    assert core_of(ch).stats().ended
    assert list(ch) == [1, 2, 3, 4]
    # Ended, drained and its keys removed: the counts stay, for this handle and a late one.
    late = channels.open_receiver[int](url)
    for stats in (ch.stats(), late.stats()):
        assert (stats.sent, stats.received, stats.waiting, stats.ended) == (5, 5, 0, True)
    late.close()


def test_joinable_channels_count_done_items_through_acknowledgements(server: RedisServer) -> None:
    url = server.url(unique("join"))
    ch = channels.open_channel[int](url, joinable=True)
    core = core_of(ch)
    with pytest.raises(ChannelError, match="more times"):
        ch.task_done()
    for i in range(3):
        ch.send(i)
    assert [ch.recv(timeout=WAIT) for _ in range(2)] == [0, 1]
    with pytest.raises(ChannelTimeout):
        ch.join(0.2)
    assert core.stats().unfinished == 3
    ch.task_done()
    ch.task_done()
    assert core.stats().unfinished == 1
    finished = threading.Event()

    def join_all() -> None:
        ch.sender.join(WAIT)
        finished.set()

    thread = threading.Thread(target=join_all)
    thread.start()
    assert ch.recv(timeout=WAIT) == 2
    assert not finished.wait(0.2)
    ch.task_done()
    assert finished.wait(WAIT)
    thread.join(WAIT)
    ch.close()
    with pytest.raises(EndOfChannel):
        ch.recv(timeout=WAIT)

    plain = channels.open_channel[int](server.url(unique("plain")))
    with pytest.raises(ChannelError, match="joinable=True"):
        plain.task_done()
    with pytest.raises(ChannelError, match="joinable=True"):
        plain.join(None)
    plain.close()


def test_dead_sender_breaks_the_channel_within_its_lease(server: RedisServer, method: str) -> None:
    url = server.url(unique("dead"))
    rx = channels.open_receiver[int](url)
    tx = channels.open_sender[int](url, lease=1.0)
    child = start(method, children.produce_and_die, tx, [1, 2, 3], "kill")
    assert rx.recv(timeout=WAIT) == 1
    assert join(child) == [-9]
    died = time.monotonic()
    items, stop = drain(rx)
    assert items == [2, 3]
    assert stop == "ChannelBroken"
    assert time.monotonic() - died < 1.0 + 1.5  # the lease, one beat of waiting, and slack
    with pytest.raises(ChannelBroken):
        rx.recv(timeout=1)


def test_a_killed_receivers_items_go_to_another_receiver(server: RedisServer) -> None:
    url = server.url(unique("redeliver"))
    ch = channels.open_channel[int](url, lease=1.0)
    for i in range(10):
        ch.send(i)
    victim = channels.open_receiver[int](url, lease=1.0)
    child = start("fork", children.recv_then_die, victim, 3)
    assert join(child) == [0]
    ch.close()
    started = time.monotonic()
    items, stop = drain(ch)
    assert stop == "EndOfChannel"
    # Taking the next item acknowledged 0 and 1; the 2 the victim held comes again.
    assert sorted(items) == list(range(2, 10))
    assert time.monotonic() - started < 1.0 + 2.0


def test_handles_pickle_to_any_process_at_any_time(server: RedisServer, method: str) -> None:
    url = server.url(unique("pickle"))
    ch = channels.open_channel[str](url)
    clone = pickle.loads(pickle.dumps(ch.clone()))  # any time: not only at process start
    child = start(method, children.produce, clone, ["from", "child"])
    ch.close()
    assert drain(ch) == (["from", "child"], "EndOfChannel")
    assert join(child) == [0]


def test_credentials_never_show(caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cr3t-Pa55"
    server = RedisServer(extra=("--requirepass", secret)).start()
    try:
        url = f"redis://:{secret}@{server.address}/{unique('auth')}"
        caplog.set_level(logging.DEBUG, logger="channels")
        ch = channels.open_channel[int](url)
        ch.send(1)
        texts = [repr(ch), repr(ch.sender), repr(ch.receiver), str(pickle.dumps(ch))]
        texts.append(str(pickle.dumps(ch.sender)))
        with pytest.raises(ConfigError) as wrong:
            channels.open_channel[int](f"redis://:wrong-{secret}@{server.address}/x")
        texts.append(str(wrong.value))
        with pytest.raises(ConfigError) as clash:
            channels.open_channel[int](url, password="other")
        texts.append(str(clash.value))
        assert ch.recv(timeout=WAIT) == 1
        ch.close()
        server.stop()
        with pytest.raises(ChannelTimeout) as down:
            ch.recv(timeout=0.3)
        texts += [str(down.value), repr(down.value.__cause__)]
        texts += [record.getMessage() for record in caplog.records]
        assert texts
        for text in texts:
            assert secret not in text
    finally:
        server.remove()


def test_without_redis_py_opening_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "import channels\n"
        "try:\n"
        "    channels.open_channel('redis://127.0.0.1:1/x')\n"
        "except channels.ConfigError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT, check=True
    )
    assert "pip install 'typed-channels[redis]'" in out.stdout


def test_an_unreachable_server_times_out_then_breaks() -> None:
    server = RedisServer().start()
    try:
        url = server.url(unique("gone"))
        ch = channels.open_channel[int](url, reconnect=1.0)
        ch.send(1)
        server.stop()
        started = time.monotonic()
        with pytest.raises(ChannelTimeout):
            ch.recv(timeout=0.3)
        assert time.monotonic() - started < 2
        with pytest.raises(ChannelBroken, match="reconnect"):
            ch.recv()
        assert time.monotonic() - started < 1.0 + 2
        ch.close()  # gives up after reconnect too; its lease lapses instead
    finally:
        server.remove()


def test_a_broken_channel_says_why_to_every_handle(server: RedisServer) -> None:
    url = server.url(unique("why"))
    ch = channels.open_channel[int](url)
    rx = channels.open_receiver[int](url)
    ch.send(1)
    core_of(ch).break_channel("a tool gave up on item 7")
    assert rx.recv(timeout=WAIT) == 1  # the items first, then the break
    for call in (lambda: rx.recv(timeout=WAIT), lambda: ch.send(2, timeout=WAIT)):
        with pytest.raises(ChannelBroken, match="gave up on item 7"):
            call()
    with pytest.raises(ChannelBroken, match="gave up on item 7"):
        channels.open_sender[int](url)
    ch.close()
    rx.close()
