"""The asyncio faces on every backend: same meanings, a free loop, cancels that lose nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

import channels
from channels import ChannelClosed, ChannelTimeout, EndOfChannel, SerializationError

from support import BOUNDED_BACKENDS, WAIT, join, open_for, start, worker_method

R = TypeVar("R")


def run(coro: Coroutine[Any, Any, R]) -> R:
    """Run ``coro`` on a fresh loop, bounded by WAIT so a hang fails the test."""
    return asyncio.run(asyncio.wait_for(coro, WAIT))


def test_items_in_order_then_the_end(backend: str) -> None:
    async def main() -> list[int]:
        ch = open_for(backend)
        async with ch.sender:
            for i in range(20):
                await ch.asend(i)
            await ch.asend_many(range(20, 40))
        got = [await ch.arecv(timeout=WAIT)]
        got += await ch.arecv_many(5, timeout=WAIT)
        got += [item async for item in ch]
        with pytest.raises(EndOfChannel):
            await ch.arecv(timeout=WAIT)
        return got

    assert run(main()) == list(range(40))


@pytest.mark.serializes
def test_timeouts_and_bad_items(backend: str) -> None:
    async def main() -> None:
        ch = open_for(backend)
        started = time.monotonic()
        with pytest.raises(ChannelTimeout):
            await ch.arecv(timeout=0.2)
        assert time.monotonic() - started >= 0.19
        with pytest.raises(SerializationError):
            await ch.asend(lambda: 1)
        await ch.asend(1)
        assert await ch.receiver.arecv(timeout=WAIT) == 1
        ch.close()
        with pytest.raises(ChannelClosed):
            await ch.asend(2)

    run(main())


@pytest.mark.parametrize("backend", BOUNDED_BACKENDS)
def test_a_full_channel_waits_without_blocking_the_loop(backend: str) -> None:
    async def main() -> None:
        ch = open_for(backend, None, maxsize=1)
        await ch.asend(1)
        sending = asyncio.ensure_future(ch.asend(2, timeout=WAIT))
        await asyncio.sleep(0.2)
        assert not sending.done()
        assert await ch.arecv(timeout=WAIT) == 1
        await asyncio.wait_for(sending, WAIT)
        assert await ch.arecv(timeout=WAIT) == 2
        with pytest.raises(ChannelTimeout) as caught:
            await ch.asend_many([3, 4, 5], timeout=0.2)
        assert caught.value.sent == 1
        ch.close()

    run(main())


def test_the_loop_keeps_running_while_arecv_waits(backend: str) -> None:
    async def main() -> int:
        ch = open_for(backend)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        tick = asyncio.ensure_future(ticker())
        with pytest.raises(ChannelTimeout):
            await ch.arecv(timeout=0.5)
        tick.cancel()
        ch.close()
        return ticks

    # A loop blocked by arecv would tick about once; a free one about 50 times.
    assert run(main()) >= 15


def _produce_slowly(sender: channels.Sender[int], count: int, every: int = 10) -> None:
    with sender:
        for i in range(count):
            sender.send(i, timeout=WAIT)
            if i % every == 0:
                time.sleep(0.002)


@pytest.mark.slow
def test_thousands_of_cancelled_arecvs_lose_and_duplicate_nothing(backend: str) -> None:
    count = 5000
    method = worker_method(backend)
    ch = open_for(backend, method)
    producer = start(method, _produce_slowly, ch.clone(), count, 4)
    ch.close()

    async def main() -> tuple[list[int], int]:
        got: list[int] = []
        cancelled = 0
        while True:
            try:
                got.append(await asyncio.wait_for(ch.arecv(), 0.0005))
            except TimeoutError:
                cancelled += 1
            except EndOfChannel:
                return got, cancelled

    got, cancelled = asyncio.run(asyncio.wait_for(main(), 120))
    assert join(producer) == [0]
    assert got == list(range(count))
    assert cancelled >= 1000, cancelled  # many arecvs were cancelled while they waited


def _consume_async(receiver: channels.Receiver[int], results: channels.Sender[int]) -> None:
    async def main() -> None:
        async with results:
            async for item in receiver:
                await results.asend(item * 2)

    asyncio.run(asyncio.wait_for(main(), WAIT))


def test_a_sync_producer_and_an_asyncio_consumer_share_one_channel(
    backend: str, method: str
) -> None:
    ch = open_for(backend, method)
    results = open_for(backend, method)
    consumer = start(method, _consume_async, ch.receiver, results.clone())
    results.close()
    producer = start(method, _produce_slowly, ch.clone(), 200)
    ch.close()
    assert sorted(results.recv_many(1000, timeout=WAIT) + list(results)) == [
        2 * i for i in range(200)
    ]
    assert join(producer, consumer) == [0, 0]


def test_a_receiver_closed_while_waiting_stops_the_wait(backend: str) -> None:
    async def main() -> float:
        ch = open_for(backend)
        waiting = asyncio.ensure_future(ch.receiver.arecv(timeout=10))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        ch.receiver.close()
        with pytest.raises(ChannelClosed):
            await waiting
        ch.send(1)  # a closed receiver never takes it
        ch.close()
        return time.monotonic() - started

    assert run(main()) < 2


# -- the conformance cases of one process, through the asyncio faces ----------------


def test_the_channel_ends_only_when_every_clone_is_closed(backend: str) -> None:
    async def main() -> None:
        ch = open_for(backend)
        clone = ch.clone()
        ch.close()
        ch.close()  # closing twice counts once
        await clone.asend(1)
        assert await ch.arecv(timeout=WAIT) == 1
        with pytest.raises(ChannelTimeout):
            await ch.arecv(timeout=0.1)  # the clone is still open
        async with clone:
            await clone.asend_many([2, 3])
        assert [item async for item in ch.receiver] == [2, 3]
        with pytest.raises(ChannelClosed):
            await clone.asend(4)

    run(main())


def test_large_and_many_items(backend: str) -> None:
    async def main() -> None:
        ch = open_for(backend)
        big = b"x" * (3 << 20)
        await ch.asend(big)
        await ch.asend_many(range(2000))
        ch.close()
        assert await ch.arecv(timeout=WAIT) == big
        got: list[int] = []
        while len(got) < 2000:
            got += await ch.arecv_many(500, timeout=WAIT)
        assert got == list(range(2000))
        with pytest.raises(EndOfChannel):
            await ch.arecv_many(10, timeout=WAIT)

    run(main())


@pytest.mark.serializes
def test_json_and_the_size_limit(backend: str) -> None:
    async def main() -> None:
        ch = open_for(backend, None, serializer="json", max_message_size=100)
        await ch.asend({"a": [1, 2]})
        with pytest.raises(SerializationError):
            await ch.asend("x" * 200)
        with pytest.raises(SerializationError):
            await ch.asend_many([1, {1, 2}])  # a set is not JSON: nothing of the batch goes
        ch.close()
        assert [item async for item in ch] == [{"a": [1, 2]}]

    run(main())
