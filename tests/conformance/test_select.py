"""select and aselect over mixed backends; fileno for selectors; closing a waiting receiver."""

from __future__ import annotations

import asyncio
import selectors
import threading
import time
from collections import Counter
from typing import Any

import pytest

import channels
from channels import ChannelBroken, ChannelClosed, ChannelTimeout, ConfigError, EndOfChannel

import children
from support import BACKENDS, LOCAL_BACKENDS, WAIT, join, open_for, start


def test_mixed_backends_each_get_their_turn() -> None:
    chans = [open_for(backend) for backend in BACKENDS]
    for i, ch in enumerate(chans):
        ch.send_many([(i, n) for n in range(10)])
    picks: list[int] = []
    for _ in range(10 * len(chans)):
        _, (i, _n) = channels.select(*chans, timeout=WAIT)
        picks.append(i)
    # Every channel always had an item ready: each got its share, none starved.
    assert Counter(picks) == {i: 10 for i in range(len(chans))}
    assert len(set(picks[: len(chans)])) == len(chans)
    for ch in chans:
        ch.close()


def test_the_item_comes_with_its_receiver_and_in_order() -> None:
    a = channels.open_channel[int]("queue")
    b = channels.open_channel[str]("manager")
    b.send("x")
    rx, item = channels.select(a.receiver, b.receiver, timeout=WAIT)
    assert rx is b.receiver
    assert item == "x"
    a.send(1)
    a.send(2)
    assert [channels.select(a, b, timeout=WAIT)[1] for _ in range(2)] == [1, 2]
    a.close()
    b.close()


def test_ended_channels_are_skipped_then_the_end() -> None:
    a = channels.open_channel[int]("pipe")
    b = channels.open_channel[int]("queue")
    a.close()
    b.send(7)
    assert channels.select(a, b, timeout=WAIT) == (b, 7)
    b.close()
    with pytest.raises(EndOfChannel):
        channels.select(a, b, timeout=WAIT)


def test_a_timeout_and_bad_calls() -> None:
    a = channels.open_channel[int]("queue")
    b = channels.open_channel[int]("manager")
    started = time.monotonic()
    with pytest.raises(ChannelTimeout):
        channels.select(a, b, timeout=0.3)
    assert 0.29 <= time.monotonic() - started < 5
    with pytest.raises(ConfigError):
        channels.select()
    with pytest.raises(ConfigError):
        channels.select(a, timeout=-1)
    a.close()
    b.close()


def test_a_wait_wakes_for_an_item_from_another_process(method: str) -> None:
    a = open_for("queue", method)
    b = open_for("simplequeue", method)
    sender = start(method, children.produce, b.clone(), ["late"])
    assert channels.select(a, b, timeout=WAIT) == (b, "late")
    assert join(sender) == [0]
    a.close()
    b.close()


def test_a_broken_member_raises_after_its_items(method: str) -> None:
    quiet = open_for("queue", method)
    dying = open_for("queue", method)
    producer = start(method, children.produce_and_die, dying.clone(), ["last"], "kill")
    dying.close()
    assert join(producer) == [-9]
    assert channels.select(quiet, dying, timeout=WAIT) == (dying, "last")
    with pytest.raises(ChannelBroken):
        channels.select(quiet, dying, timeout=WAIT)
    quiet.close()


def test_aselect_keeps_the_loop_free_and_mixes_backends() -> None:
    async def main() -> tuple[Any, int]:
        a = channels.open_channel[int]("queue")
        b = channels.open_channel[int]("manager")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        async def later() -> None:
            await asyncio.sleep(0.3)
            await b.asend(9)

        tasks = [asyncio.ensure_future(ticker()), asyncio.ensure_future(later())]
        rx, item = await channels.aselect(a, b, timeout=WAIT)
        for task in tasks:
            task.cancel()
        with pytest.raises(ChannelTimeout):
            await channels.aselect(a, b, timeout=0.1)
        a.close()
        b.close()
        with pytest.raises(EndOfChannel):
            await channels.aselect(a, b, timeout=WAIT)
        return (rx is b, item), ticks

    (found, ticks) = asyncio.run(asyncio.wait_for(main(), WAIT))
    assert found == (True, 9)
    assert ticks >= 10


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_a_receiver_joins_a_selectors_loop(backend: str) -> None:
    ch = open_for(backend)
    with selectors.DefaultSelector() as sel:
        sel.register(ch.receiver.fileno(), selectors.EVENT_READ)
        assert sel.select(0.05) == []
        ch.send("ready")
        assert sel.select(WAIT)
        assert ch.recv_nowait() == "ready"
    ch.close()


def test_a_backend_without_a_descriptor_says_so() -> None:
    ch = open_for("manager")
    with pytest.raises(channels.ChannelError, match="no descriptor"):
        ch.receiver.fileno()
    ch.close()


def test_closing_a_receiver_stops_a_recv_waiting_in_another_thread(backend: str) -> None:
    ch = open_for(backend)
    outcome: list[object] = []

    def wait() -> None:
        try:
            outcome.append(ch.receiver.recv(timeout=10))
        except channels.ChannelError as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.1)
    started = time.monotonic()
    ch.receiver.close()
    waiter.join(WAIT)
    assert time.monotonic() - started < 2
    assert len(outcome) == 1
    assert isinstance(outcome[0], ChannelClosed)
    ch.send("after")  # a closed receiver never takes it
    ch.close()
    with pytest.raises(ChannelClosed):
        ch.recv(timeout=WAIT)
