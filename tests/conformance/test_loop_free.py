"""The event loop never stops: a ticker keeps ticking while channels wait, whatever the
other processes or the server do, and any number of tasks may wait on one channel.

The bound on the ticker's longest gap is generous (a loaded machine delays any
ticker); the real figure is measured in ``benchmarks/bench_loop.py``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import AsyncGenerator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import pytest

import channels
from channels import ChannelTimeout, WouldBlock
from channels._backends.manager.core import ManagerCore
from channels._engine import steps as _steps
from channels._engine.sender import SenderHandle

from support import BACKENDS, BOUNDED_BACKENDS, HAVE_REDIS, LOCAL_BACKENDS, WAIT, open_for

R = TypeVar("R")

#: The ticker's period, and the longest gap a test accepts between two ticks.
TICK = 0.01
MAX_GAP = 0.5


def run(coro: Coroutine[Any, Any, R]) -> R:
    return asyncio.run(asyncio.wait_for(coro, WAIT * 3))


class Ticks:
    """The longest gap seen between the ticks of a ticker task."""

    longest = 0.0


@asynccontextmanager
async def ticking() -> AsyncGenerator[Ticks]:
    ticks = Ticks()

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            ticks.longest = max(ticks.longest, now - last - TICK)
            last = now

    task = asyncio.ensure_future(tick())
    await asyncio.sleep(TICK * 3)  # the ticker is running before the wait starts
    try:
        yield ticks
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("backend", BOUNDED_BACKENDS)
def test_a_full_channel_leaves_the_loop_free(backend: str) -> None:
    ch = open_for(backend, maxsize=1)

    async def main() -> float:
        await ch.asend(0)
        async with ticking() as ticks:
            with pytest.raises(ChannelTimeout):
                await ch.asend(1, timeout=0.5)
        return ticks.longest

    assert run(main()) < MAX_GAP
    assert ch.recv(timeout=WAIT) == 0
    ch.close()


def _stop_holding(point: str, ch: channels.Channel[int]) -> None:
    """In a child: stop (SIGSTOP) holding the lock that ``point`` is taken under."""
    _steps.pause_at(point)
    if point.startswith("send"):
        ch.send(1)
    else:
        ch.recv_nowait()


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    return stat[stat.rindex(b")") + 2 :].split()[0] == b"T"


def _nowait(ch: channels.Channel[int], point: str) -> None:
    if point.startswith("send"):
        ch.send_nowait(2)
    else:
        ch.recv_nowait()


@pytest.mark.parametrize("point", ["send:locked", "recv:locked"])
@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_a_lock_held_by_a_stopped_process_leaves_the_loop_free(backend: str, point: str) -> None:
    ch = open_for(backend)
    ch.send(0)
    child = multiprocessing.get_context("fork").Process(target=_stop_holding, args=(point, ch))
    child.start()
    deadline = time.monotonic() + WAIT
    while not _stopped(child.pid or 0):
        assert time.monotonic() < deadline, f"the child never reached {point}"
        time.sleep(0.005)

    async def main() -> float:
        async with ticking() as ticks:
            started = time.monotonic()
            call = ch.asend(2, timeout=0.5) if point.startswith("send") else ch.arecv(0.5)
            with pytest.raises(ChannelTimeout):
                await call
            assert time.monotonic() - started < 0.5 + MAX_GAP
        return ticks.longest

    try:
        assert run(main()) < MAX_GAP
        started = time.monotonic()  # the *_nowait calls do not wait for the lock either
        with pytest.raises(WouldBlock):
            _nowait(ch, point)
        assert time.monotonic() - started < MAX_GAP
    finally:
        os.kill(child.pid or 0, signal.SIGKILL)
        child.join(WAIT)
    ch.send(3)  # the lock went to the next taker, who repaired it
    ch.close()
    assert list(ch) == [0, 3]


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_aselect_takes_from_another_channel_while_one_lock_is_held(backend: str) -> None:
    stuck = open_for(backend)
    other = open_for(backend)
    child = multiprocessing.get_context("fork").Process(
        target=_stop_holding, args=("recv:locked", stuck)
    )
    child.start()
    deadline = time.monotonic() + WAIT
    while not _stopped(child.pid or 0):
        assert time.monotonic() < deadline, "the child never reached recv:locked"
        time.sleep(0.005)

    async def main() -> tuple[bool, Any, float]:
        async def later() -> None:
            await asyncio.sleep(0.2)
            await other.asend(7)

        sending = asyncio.ensure_future(later())
        async with ticking() as ticks:
            rx, item = await channels.aselect(stuck, other, timeout=WAIT)
        await sending
        return rx is other, item, ticks.longest

    try:
        found, item, longest = run(main())
    finally:
        os.kill(child.pid or 0, signal.SIGKILL)
        child.join(WAIT)
    assert (found, item) == (True, 7)
    assert longest < MAX_GAP
    stuck.close()
    other.close()


@pytest.mark.skipif(not HAVE_REDIS, reason="redis-server or redis-py is missing")
def test_a_stalled_redis_server_leaves_the_loop_free() -> None:
    from redis_server import RedisServer  # needs redis-py: imported only here

    server = RedisServer().start()
    try:
        ch = channels.open_channel[int](server.url("stall"), lease=30)
        _stalled_server_leaves_the_loop_free(ch, server.pid)
    finally:
        server.remove()


def test_a_stalled_manager_server_leaves_the_loop_free() -> None:
    ch = channels.open_channel[int]("manager")
    core = cast(ManagerCore, cast("SenderHandle[int]", ch.sender)._core)
    assert core.manager is not None
    assert core.manager.process is not None
    _stalled_server_leaves_the_loop_free(ch, core.manager.process.pid or 0)


def _stalled_server_leaves_the_loop_free(ch: channels.Channel[int], pid: int) -> None:
    async def main() -> tuple[float, list[float]]:
        await ch.asend(0)
        assert await ch.arecv(timeout=WAIT) == 0
        spent: list[float] = []
        os.kill(pid, signal.SIGSTOP)
        try:
            async with ticking() as ticks:
                for call in (ch.arecv(timeout=1), ch.asend(1, timeout=1)):
                    started = time.monotonic()
                    with pytest.raises(ChannelTimeout):
                        await call
                    spent.append(time.monotonic() - started)
        finally:
            os.kill(pid, signal.SIGCONT)
        return ticks.longest, spent

    longest, spent = run(main())
    assert longest < MAX_GAP
    assert all(0.9 < s < 1 + MAX_GAP for s in spent), spent
    # The send that timed out may still have gone in; the channel goes on either way.
    ch.send(2, timeout=WAIT)
    ch.close()
    assert list(ch)[-1:] == [2]


# -- any number of waiters --------------------------------------------------------------

WAITERS = 10_000


def _send_all(sender: channels.Sender[int], count: int) -> None:
    for start in range(0, count, 100):
        sender.send_many(range(start, min(count, start + 100)), timeout=WAIT)


@pytest.mark.parametrize("how", ["arecv", "aselect"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_ten_thousand_waiters_each_get_an_item(backend: str, how: str) -> None:
    ch = open_for(backend)

    async def wait_for_one() -> int:
        if how == "arecv":
            return int(await ch.arecv(timeout=WAIT * 3))
        _, item = await channels.aselect(ch.receiver, timeout=WAIT * 3)
        return int(item)

    async def main() -> list[int]:
        waiters = [asyncio.ensure_future(wait_for_one()) for _ in range(WAITERS)]
        await asyncio.sleep(0.2)  # every task waits before the first item comes
        producer = threading.Thread(target=_send_all, args=(ch.sender, WAITERS))
        producer.start()
        try:
            return await asyncio.gather(*waiters)
        finally:
            await asyncio.to_thread(producer.join, WAIT)

    got = run(main())
    ch.close()
    assert sorted(got) == list(range(WAITERS))
