"""Batches over every backend: send_many and recv_many keep every promise of single items."""

from __future__ import annotations

import os
import signal
import time

import pytest

import channels
from channels import ChannelTimeout, ConfigError, EndOfChannel, SerializationError, WouldBlock

from support import BOUNDED_BACKENDS, WAIT, drain, join, open_for, start


def test_a_batch_arrives_whole_and_in_order(backend: str) -> None:
    ch = open_for(backend)
    ch.send_many(range(250))
    ch.send_many([])  # nothing to send is fine
    ch.send(250)
    ch.close()
    got: list[int] = []
    while True:
        try:
            batch = ch.recv_many(100, timeout=WAIT)
        except EndOfChannel:
            break
        assert 1 <= len(batch) <= 100
        got += batch
    assert got == list(range(251))


def test_recv_many_returns_what_is_ready_without_waiting_for_more(backend: str) -> None:
    ch = open_for(backend)
    ch.send_many([1, 2, 3])
    assert ch.recv_many(10, timeout=WAIT) == [1, 2, 3]
    with pytest.raises(WouldBlock):
        ch.recv_many_nowait(10)
    with pytest.raises(ChannelTimeout):
        ch.recv_many(10, timeout=0.1)
    ch.send(4)
    assert ch.recv_many_nowait(10) == [4]
    ch.close()
    with pytest.raises(EndOfChannel):
        ch.recv_many_nowait(10)
    with pytest.raises(EndOfChannel):
        ch.recv_many(10, timeout=WAIT)


def test_a_batch_with_an_unpicklable_item_sends_nothing(backend: str) -> None:
    ch = open_for(backend)
    with pytest.raises(SerializationError):
        ch.send_many([1, 2, lambda: 3, 4])
    ch.send(5)
    assert ch.recv(timeout=WAIT) == 5
    with pytest.raises(WouldBlock):
        ch.recv_nowait()
    ch.close()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_max_items_must_be_a_whole_number_of_at_least_one(backend: str, bad: object) -> None:
    ch = open_for(backend)
    with pytest.raises(ConfigError, match="max_items"):
        ch.recv_many(bad)  # type: ignore[arg-type]
    ch.close()


@pytest.mark.parametrize("backend", BOUNDED_BACKENDS)
def test_a_full_channel_times_out_a_batch_and_says_how_much_went(backend: str) -> None:
    ch = open_for(backend, None, maxsize=5)
    with pytest.raises(ChannelTimeout) as caught:
        ch.send_many(range(8), timeout=0.3)
    assert caught.value.sent == 5
    assert ch.recv_many(10, timeout=WAIT) == [0, 1, 2, 3, 4]
    ch.close()
    assert drain(ch) == ([], "EndOfChannel")


@pytest.mark.parametrize("backend", BOUNDED_BACKENDS)
def test_a_batch_larger_than_the_channel_goes_as_room_appears(backend: str, method: str) -> None:
    ch = open_for(backend, method, maxsize=4)
    results = open_for(backend, method)
    consumer = start(method, _consume_batches, ch.receiver, results.clone())
    results.close()
    ch.send_many(range(100), timeout=WAIT)
    ch.close()
    got, how = drain(results)
    assert how == "EndOfChannel"
    assert got == list(range(100))
    assert join(consumer) == [0]


def _consume_batches(receiver: channels.Receiver[int], results: channels.Sender[int]) -> None:
    with results:
        while True:
            try:
                batch = receiver.recv_many(7, timeout=WAIT)
            except EndOfChannel:
                return
            results.send_many(batch, timeout=WAIT)


def test_items_of_one_batch_may_reach_several_receivers_exactly_once(
    backend: str, method: str
) -> None:
    ch = open_for(backend, method)
    results = open_for(backend, method)
    consumers = [start(method, _consume_batches, ch.receiver, results.clone()) for _ in range(3)]
    results.close()
    for start_at in range(0, 600, 200):
        ch.send_many(range(start_at, start_at + 200))
    ch.close()
    got, how = drain(results)
    assert how == "EndOfChannel"
    assert sorted(got) == list(range(600))
    assert join(*consumers) == [0, 0, 0]


def _send_batches_forever(sender: channels.Sender[int]) -> None:
    n = 0
    while True:
        sender.send_many(range(n, n + 50), timeout=WAIT)
        n += 50


def test_a_producer_killed_in_the_middle_of_batches_loses_nothing_it_sent(backend: str) -> None:
    ch = open_for(backend, "fork", **({"lease": 1.0} if backend == "redis" else {}))
    producer = start("fork", _send_batches_forever, ch.clone())
    deadline = time.monotonic() + WAIT
    while ch.stats().sent < 500 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(producer.pid or 0, signal.SIGKILL)
    assert join(producer) == [-signal.SIGKILL]
    ch.close()
    got, how = drain(ch)
    assert how == "ChannelBroken"  # the producer died holding an open handle
    assert got == list(range(len(got)))  # a prefix: in order, nothing twice, no gap
    assert len(got) >= 500


def test_stats_count_items_and_handles(backend: str) -> None:
    ch = open_for(backend)
    clone = ch.clone()
    ch.send_many([1, 2, 3])
    first = ch.stats()
    assert (first.waiting, first.senders, first.sent, first.received) == (3, 2, 3, 0)
    assert not first.ended
    assert not first.broken
    assert first.unfinished == 0
    assert ch.recv(timeout=WAIT) == 1
    second = ch.receiver.stats()
    assert (second.waiting, second.sent, second.received) == (2, 3, 1)
    assert second.receivers == 1
    clone.close()
    ch.close()
    assert ch.sender.stats().senders == 0
    assert ch.recv_many(5, timeout=WAIT) == [2, 3]
    last = ch.stats()
    assert last.ended
    assert last.waiting == 0
    with pytest.raises(EndOfChannel):
        ch.recv(timeout=WAIT)


def test_stats_fields_are_alike_on_every_backend(backend: str) -> None:
    ch = open_for(backend)
    stats = ch.stats()
    assert isinstance(stats, channels.ChannelStats)
    names = [f for f in vars(stats) if not f.startswith("_")]
    assert names == [
        "waiting",
        "senders",
        "receivers",
        "sent",
        "received",
        "unfinished",
        "ended",
        "broken",
    ]
    ch.close()
