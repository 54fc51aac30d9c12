"""Joinable channels on every backend: task_done, join, and a receiver that dies holding work."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import channels
from channels import ChannelBroken, ChannelError, ChannelTimeout

from support import WAIT, join, open_for, start


def test_join_waits_until_every_item_is_marked_done(backend: str) -> None:
    ch = open_for(backend, None, joinable=True)
    ch.join(timeout=WAIT)  # nothing sent: nothing to wait for
    ch.send_many([1, 2, 3])
    assert ch.stats().unfinished == 3
    with pytest.raises(ChannelTimeout):
        ch.join(timeout=0.1)
    assert ch.recv(timeout=WAIT) == 1
    ch.receiver.task_done()
    assert ch.stats().unfinished == 2
    done = threading.Event()

    def joiner() -> None:
        ch.sender.join(timeout=WAIT)
        done.set()

    thread = threading.Thread(target=joiner)
    thread.start()
    assert ch.recv_many(5, timeout=WAIT) == [2, 3]
    ch.task_done()
    assert not done.wait(0.1)
    ch.task_done()
    assert done.wait(WAIT)
    thread.join(WAIT)
    assert ch.stats().unfinished == 0
    ch.close()


def test_task_done_needs_an_item_and_the_option(backend: str) -> None:
    ch = open_for(backend, None, joinable=True)
    with pytest.raises(ChannelError, match="more times"):
        ch.task_done()
    ch.send(1)
    ch.recv(timeout=WAIT)
    ch.task_done()
    with pytest.raises(ChannelError, match="more times"):
        ch.task_done()
    ch.close()
    plain = open_for(backend)
    with pytest.raises(ChannelError, match="joinable=True"):
        plain.task_done()
    with pytest.raises(ChannelError, match="joinable=True"):
        plain.join(timeout=WAIT)
    plain.close()


def _work(receiver: channels.Receiver[int], results: channels.Sender[int]) -> None:
    with results:
        for item in receiver:
            results.send(item * item, timeout=WAIT)
            receiver.task_done()


def test_workers_drain_a_joinable_channel_with_no_poison_pills(backend: str, method: str) -> None:
    tasks = open_for(backend, method, joinable=True)
    results = open_for(backend, method)
    workers = [start(method, _work, tasks.receiver, results.clone()) for _ in range(2)]
    results.close()
    tasks.send_many(range(40))
    tasks.join(timeout=WAIT)  # every task done, in any process
    assert tasks.stats().unfinished == 0
    tasks.close()
    assert join(*workers) == [0, 0]
    assert sorted(results.recv_many(100, timeout=WAIT)) == sorted(i * i for i in range(40))


def _take_and_hang(receiver: channels.Receiver[int], count: int) -> None:
    for _ in range(count):
        receiver.recv(timeout=WAIT)
    time.sleep(WAIT)


@pytest.mark.parametrize("backend", ["pipe", "queue", "simplequeue", "manager"])
def test_a_receiver_that_dies_holding_work_breaks_join(backend: str, method: str) -> None:
    ch = open_for(backend, method, joinable=True)
    ch.send_many([1, 2, 3])
    taker = start(method, _take_and_hang, ch.receiver, 2)
    deadline = time.monotonic() + WAIT
    while ch.stats().received < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ch.recv(timeout=WAIT) == 3
    ch.task_done()
    with pytest.raises(ChannelTimeout):
        ch.join(timeout=0.1)  # alive, it may still finish its two
    os.kill(taker.pid or 0, signal.SIGKILL)
    assert join(taker) == [-signal.SIGKILL]
    started = time.monotonic()
    with pytest.raises(ChannelBroken, match="2 item"):
        ch.join(timeout=WAIT)
    assert time.monotonic() - started < 5
    ch.close()
