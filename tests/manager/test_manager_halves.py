"""``open_sender`` and ``open_receiver`` on ``manager://HOST:PORT/NAME``, as on redis."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import cast

import pytest

import channels
from channels import ChannelClosed, ChannelTimeout, ConfigError, EndOfChannel
from channels._backends.manager.keys import ENV_AUTHKEY
from channels._backends.manager.manager import ChannelManager

import children
from support import WAIT, drain, join, start

KEY = secrets.token_hex(24)


@pytest.fixture
def url() -> Iterator[str]:
    """The URL of a fresh name on a running server, with the key in it."""
    with ChannelManager(address=("127.0.0.1", 0), authkey=KEY) as manager:
        host, port = cast(tuple[str, int], manager.address)
        yield f"manager://{host}:{port}/jobs-{secrets.token_hex(4)}?authkey={KEY}"


def test_a_receiver_that_joins_first_waits_and_open_sender_refuses_an_ended_channel(
    url: str,
) -> None:
    rx = channels.open_receiver[str](url)
    with pytest.raises(ChannelTimeout):
        rx.recv(timeout=0.2)
    assert rx.stats().senders == 0
    tx = channels.open_sender[str](url)
    other = channels.open_sender[str](url)
    assert rx.stats().senders == 2
    tx.send("one", timeout=WAIT)
    tx.close()
    assert rx.recv(timeout=WAIT) == "one"
    with pytest.raises(ChannelTimeout):  # `other` is still open
        rx.recv(timeout=0.2)
    other.close()
    with pytest.raises(EndOfChannel):
        rx.recv(timeout=WAIT)
    with pytest.raises(ChannelClosed):
        channels.open_sender[str](url)
    with pytest.raises(EndOfChannel):  # a late receiver sees the end too
        channels.open_receiver[str](url).recv(timeout=WAIT)
    stats = rx.stats()
    assert (stats.sent, stats.received, stats.ended) == (1, 1, True)


def test_open_sender_refuses_a_channel_that_ended_with_items_left(url: str) -> None:
    tx = channels.open_sender[int](url)
    tx.send(7, timeout=WAIT)
    tx.close()
    with pytest.raises(ChannelClosed):
        channels.open_sender[int](url)
    rx = channels.open_receiver[int](url)
    assert drain(rx) == ([7], "EndOfChannel")


def test_the_consumer_sees_the_end_once_producers_in_other_processes_are_done(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_AUTHKEY, KEY)  # where a spawned child finds the key
    rx = channels.open_receiver[int](url)
    senders = [channels.open_sender[int](url) for _ in range(3)]  # each producer closes its own
    producers = [
        start("spawn", children.produce, tx, list(range(i * 100, i * 100 + 100)))
        for i, tx in enumerate(senders)
    ]
    assert join(*producers) == [0, 0, 0]
    items, stop = drain(rx)
    assert stop == "EndOfChannel"
    assert sorted(items) == list(range(300))
    stats = rx.stats()
    assert (stats.sent, stats.received) == (300, 300)


def test_a_half_needs_a_named_channel_on_a_running_server(url: str) -> None:
    base = url.split("?", maxsplit=1)[0]
    unnamed = base.rsplit("/", 1)[0]
    with pytest.raises(ConfigError, match="NAME") as caught:
        channels.open_sender[int](f"{unnamed}?authkey={KEY}")
    assert KEY not in str(caught.value)
    with pytest.raises(ConfigError, match="NAME"):
        channels.open_receiver[int]("manager")
    wrong = secrets.token_hex(24)
    with pytest.raises(channels.AuthkeyRejected) as refused:
        channels.open_sender[int](f"{base}?authkey={wrong}")
    assert wrong not in str(refused.value)
    assert KEY not in str(refused.value)


def test_reopening_a_name_with_another_joinable_is_refused(url: str) -> None:
    ch = channels.open_channel[int](url, joinable=True)
    with pytest.raises(ConfigError, match="joinable=True"):
        channels.open_channel[int](url)
    with pytest.raises(ConfigError, match="joinable=True"):
        channels.open_sender[int](url, joinable=False)
    with channels.open_sender[int](url, joinable=True) as tx:
        tx.send(1, timeout=WAIT)
    ch.close()
    assert drain(ch.receiver) == ([1], "EndOfChannel")
    ch.receiver.task_done()
