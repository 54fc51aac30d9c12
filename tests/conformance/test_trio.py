"""The asyncio faces under trio, through anyio (the ``trio`` extra), on every backend."""

from __future__ import annotations

import pytest

import channels
from channels import ChannelTimeout, EndOfChannel

from support import WAIT, join, open_for, start, worker_method

trio = pytest.importorskip("trio")
pytest.importorskip("anyio")


def _produce(sender: channels.Sender[int]) -> None:
    with sender:
        sender.send_many(range(100), timeout=WAIT)


def test_a_trio_consumer_and_a_process_producer(backend: str) -> None:
    method = worker_method(backend)
    ch = open_for(backend, method)
    producer = start(method, _produce, ch.clone())
    ch.close()

    async def main() -> list[int]:
        with trio.fail_after(WAIT):
            got = [await ch.arecv(timeout=WAIT)]
            got += await ch.arecv_many(10, timeout=WAIT)
            got += [item async for item in ch]
            return got

    assert trio.run(main) == list(range(100))
    assert join(producer) == [0]


def test_timeouts_ticks_and_select_under_trio(backend: str) -> None:
    a = open_for(backend)
    b = open_for(backend)

    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await trio.sleep(0.01)
                ticks += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            with pytest.raises(ChannelTimeout):
                await a.arecv(timeout=0.3)
            await b.asend(7)
            assert await channels.aselect(a, b, timeout=WAIT) == (b, 7)
            a.close()
            b.close()
            with pytest.raises(EndOfChannel):
                await channels.aselect(a, b, timeout=WAIT)
            nursery.cancel_scope.cancel()
        return ticks

    assert trio.run(main) >= 10
