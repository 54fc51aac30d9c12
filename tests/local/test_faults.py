"""Faults of local channels: dead peers, dead lock holders, a corrupt stream, huge items."""

from __future__ import annotations

import os
import signal
import time

import pytest

from channels import ChannelBroken
from channels._backends.local.core import LocalCore

import children
from support import LOCAL_BACKENDS, WAIT, drain, join, open_for, start


def _core(ch: object) -> LocalCore:
    core = ch.sender._core  # type: ignore[attr-defined]
    assert isinstance(core, LocalCore)
    return core


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_a_corrupt_stream_is_broken_not_a_pickle_traceback(backend: str) -> None:
    ch = open_for(backend)
    ch.send("good")
    os.write(_core(ch)._wfd, b"\xff\xff\xff\xff" + b"garbage")
    assert ch.recv(timeout=WAIT) == "good"
    with pytest.raises(ChannelBroken, match="middle of reading or writing"):
        ch.recv(timeout=WAIT)
    with pytest.raises(ChannelBroken):
        ch.send("more")
    ch.close()


def test_every_consumer_gone_breaks_a_blocked_producer(method: str) -> None:
    ch = open_for("queue", method, maxsize=2)
    results = open_for("queue", method)
    consumer = start(method, children.recv_then_die, ch.receiver, 1)
    ch.send("first")
    assert join(consumer) == [0]
    producer = start(method, children.fill_then_block, ch.clone(), results.clone())
    results.close()
    started = time.monotonic()
    assert drain(results) == (["ChannelBroken"], "EndOfChannel")
    assert time.monotonic() - started < 10
    assert join(producer) == [0]
    ch.close()


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_a_receiver_killed_while_waiting_does_not_block_the_others(
    backend: str, method: str
) -> None:
    ch = open_for(backend, method)
    waiter = start(method, children.recv_forever, ch.receiver)
    time.sleep(0.5)  # let it take the read lock and wait
    waiter.kill()
    assert join(waiter) == [-signal.SIGKILL]
    ch.send("after")
    assert ch.recv(timeout=WAIT) == "after"
    ch.close()
    assert drain(ch) == ([], "EndOfChannel")


@pytest.mark.slow
def test_a_sender_killed_in_the_middle_of_a_huge_send_leaves_no_torn_item() -> None:
    ch = open_for("queue", "fork", shm_threshold=0)  # through the overflow file
    core = _core(ch)
    sender = start("fork", children.send_one, ch.clone(), b"x" * (300 << 20))
    deadline = time.monotonic() + WAIT
    while os.fstat(core._fds.state).st_size < (8 << 20) and time.monotonic() < deadline:
        time.sleep(0.001)  # wait until the item is being written
    sender.kill()
    assert join(sender) == [-signal.SIGKILL]
    ch.send("after", timeout=WAIT)  # the dead writer's lock is taken over
    ch.close()
    assert drain(ch) == (["after"], "ChannelBroken")


@pytest.mark.slow
def test_a_very_large_item_arrives_intact(method: str) -> None:
    ch = open_for("queue", method)
    big = os.urandom(1 << 20) * 256  # 256 MiB
    producer = start(method, children.produce, ch.clone(), [big])
    ch.close()
    items, stop = drain(ch)
    assert join(producer) == [0]
    assert stop == "EndOfChannel"
    assert len(items) == 1
    assert items[0] == big
