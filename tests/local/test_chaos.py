"""Many producers and consumers under random SIGKILLs, and under contention with tiny timeouts.

Counted in every run: nothing hangs, nothing is duplicated, each receiver sees
each sender's items in order, and the items lost stay within the documented
bound (at most the one item each killed receiver was taking or holding).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from collections import defaultdict
from multiprocessing.process import BaseProcess
from typing import Any

import pytest

import channels
from channels._backends.local.core import LocalCore

from support import LOCAL_BACKENDS, WAIT, drain, open_for

_CTX = multiprocessing.get_context("fork")


def _produce(sender: channels.Sender[Any], tag: int, stop: float, batch: int) -> None:
    seq = 0
    with sender:
        while time.monotonic() < stop:
            if batch == 1:
                sender.send((tag, seq), timeout=WAIT)
            else:
                sender.send_many([(tag, seq + k) for k in range(batch)], timeout=WAIT)
            seq += batch


def _forward(
    receiver: channels.Receiver[Any], results: channels.Sender[Any], me: int, batch: int
) -> None:
    with results:
        while True:
            try:
                items = receiver.recv_many(batch, timeout=WAIT)
            except (channels.EndOfChannel, channels.ChannelBroken):
                return
            results.send_many([(me, item) for item in items], timeout=WAIT)


@pytest.mark.slow
@pytest.mark.extended  # a long fault suite: .ci/run runs it after the default set
@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_random_kills_lose_at_most_what_the_killed_receivers_held(backend: str, batch: int) -> None:
    """With batches, a killed receiver can take the run of its last ``recv_many`` with it."""
    rng = random.Random(f"chaos-{backend}-{batch}")
    ch = open_for(backend, None, **({"maxsize": 16} if backend == "queue" else {}))
    results = open_for("queue")
    stop = time.monotonic() + 2.5
    producers: dict[int, BaseProcess] = {}
    consumers: dict[int, BaseProcess] = {}

    def new_producer() -> None:
        tag = len(producers)
        producers[tag] = _CTX.Process(target=_produce, args=(ch.clone(), tag, stop, batch))
        producers[tag].start()

    def new_consumer() -> None:
        me = len(consumers)
        consumers[me] = _CTX.Process(
            target=_forward, args=(ch.receiver, results.clone(), me, batch)
        )
        consumers[me].start()

    for _ in range(4):
        new_producer()
        new_consumer()
    killed_producers: set[int] = set()
    killed_consumers: set[int] = set()
    while time.monotonic() < stop - 0.2:
        time.sleep(rng.uniform(0.02, 0.1))
        if rng.random() < 0.5:
            tag = rng.choice([t for t, p in producers.items() if p.is_alive()] or [-1])
            if tag >= 0:
                os.kill(producers[tag].pid or 0, signal.SIGKILL)
                killed_producers.add(tag)
                new_producer()
        else:
            me = rng.choice([c for c, p in consumers.items() if p.is_alive()] or [-1])
            if me >= 0:
                os.kill(consumers[me].pid or 0, signal.SIGKILL)
                killed_consumers.add(me)
                new_consumer()
    ch.close()
    results.close()
    for process in [*producers.values(), *consumers.values()]:
        process.join(WAIT)
        assert process.exitcode is not None, "a process hung"
    got, how = drain(results)
    assert how in ("EndOfChannel", "ChannelBroken")
    assert _losses(got, len(producers)) <= len(killed_consumers) * batch
    assert len(got) > 100  # the run moved real traffic
    assert killed_producers
    assert killed_consumers


def _losses(got: list[Any], producers: int) -> int:
    """Check duplicates and order per receiver; return the items missing below each newest."""
    seen: dict[tuple[int, int], int] = defaultdict(int)
    last: dict[tuple[int, int], int] = {}
    for me, (tag, seq) in got:
        seen[tag, seq] += 1
        assert last.get((me, tag), -1) < seq, "a receiver saw one sender's items out of order"
        last[me, tag] = seq
    assert max(seen.values()) == 1, "an item arrived twice"
    lost = 0
    for tag in range(producers):
        seqs = [seq for (t, seq) in seen if t == tag]
        lost += max(seqs, default=-1) + 1 - len(seqs)  # gaps below the newest that arrived
    return lost


def _contend(
    ch: channels.Channel[Any], tag: int, stop: float, report: channels.Sender[Any]
) -> None:
    sent: list[int] = []
    received: list[Any] = []
    errors: list[str] = []
    seq = 0
    while time.monotonic() < stop:
        try:
            ch.send((tag, seq), timeout=0.002)
            sent.append(seq)
            seq += 1
        except (channels.ChannelTimeout, channels.WouldBlock):
            pass
        except BaseException as exc:  # anything else is a defect the test reports
            errors.append(repr(exc))
        try:
            received.append(ch.recv(timeout=0.002))
        except (channels.ChannelTimeout, channels.WouldBlock):
            pass
        except BaseException as exc:
            errors.append(repr(exc))
    report.send((tag, sent, received, errors), timeout=WAIT)
    report.close()


@pytest.mark.slow
@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_contention_with_tiny_timeouts_loses_and_duplicates_nothing(backend: str) -> None:
    ch = open_for(backend, None, **({"maxsize": 8} if backend == "queue" else {}))
    report = open_for("queue")
    stop = time.monotonic() + 2.0
    workers = [
        _CTX.Process(target=_contend, args=(ch, tag, stop, report.clone())) for tag in range(4)
    ]
    for w in workers:
        w.start()
    report.close()
    reports, how = drain(report)
    for w in workers:
        w.join(WAIT)
    assert how == "EndOfChannel"
    assert [r[3] for r in reports] == [[], [], [], []], "only ChannelErrors may be raised"
    ch.close()
    rest, end = drain(ch, timeout=5)
    assert end == "EndOfChannel"
    received = [item for r in reports for item in r[2]] + rest
    sent = [(tag, seq) for tag, seqs, _, _ in reports for seq in seqs]
    assert sorted(received) == sorted(sent)
    assert len(sent) > 100


def test_the_room_pipe_never_blocks_a_sender_or_a_receiver() -> None:
    """Several senders poll the room pipe; a byte one of them read must not leave another
    blocked in read(), and a pipe full of unread bytes must not block a receiver's write."""
    ch = open_for("queue", None, maxsize=1)
    core = ch.sender._core  # type: ignore[attr-defined]
    assert isinstance(core, LocalCore)
    fds = core._fds
    assert not os.get_blocking(fds.room_reader)
    assert not os.get_blocking(fds.room_writer)
    ch.close()
