"""The asyncio goals: async receive throughput beside sync ``recv`` and aioprocessing.

One producer process sends ``--count`` small ints; one consumer process takes
them, by one of:

- ``sync``: ``for item in rx`` (``recv``) on the channel;
- ``async``: ``async for item in rx`` (``arecv``) in ``asyncio.run``, same backend;
- ``async_many``: ``await rx.arecv_many(100)``, same backend;
- ``aioprocessing``: ``await AioQueue.coro_get()`` (a thread per call under the
  hood), fed by ``put`` from the producer.

Goals: ``async`` >= 0.8x ``sync`` on the same backend, and >= 3x
``aioprocessing``. The ratios are medians of per-round ratios, each round
running every contender once (order reversed every round). aioprocessing is
optional (``pip install typed-channels[bench]``). ``redis`` runs on a private
redis-server started for the run. Run:
``python benchmarks/bench_async.py [--backend queue pipe manager redis] [--count N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from multiprocessing.context import BaseContext
from multiprocessing.queues import Queue as MPQueue
from typing import Any, Protocol, cast

from channels import EndOfChannel, Receiver, open_channel
from channels._bench.processes import StartLine, throughput
from channels._bench.workers import Items, channel_producer


class _AioQueue(Protocol):
    def put(self, item: object) -> None: ...

    def coro_get(self) -> Coroutine[Any, Any, object]: ...


def _aio_queue() -> _AioQueue | None:
    try:
        module = importlib.import_module("aioprocessing")
    except ImportError:
        return None
    make = cast("Callable[[], _AioQueue]", module.AioQueue)
    return make()


def _async_consumer(
    rx: Receiver[object], many: bool, start: StartLine, results: MPQueue[tuple[int, float]]
) -> None:
    async def drain() -> int:
        count = 0
        if many:
            while True:
                try:
                    count += len(await rx.arecv_many(100))
                except EndOfChannel:
                    return count
        async for _ in rx:
            count += 1
        return count

    start.wait()
    count = asyncio.run(drain())
    results.put((count, time.monotonic()))


def _sync_consumer(
    rx: Receiver[object], start: StartLine, results: MPQueue[tuple[int, float]]
) -> None:
    count = 0
    start.wait()
    for _ in rx:
        count += 1
    results.put((count, time.monotonic()))


def _aio_producer(q: _AioQueue, n: int, start: StartLine) -> None:
    start.wait()
    for i in range(n):
        q.put(i)


def _aio_consumer(q: _AioQueue, start: StartLine, results: MPQueue[tuple[int, float]]) -> None:
    async def drain() -> int:
        count = 0
        while await q.coro_get() is not None:
            count += 1
        return count

    start.wait()
    count = asyncio.run(drain())
    results.put((count, time.monotonic()))


def _channel(ctx: BaseContext, spec: Callable[[], str], count: int, way: str) -> float:
    ch = open_channel[object](spec())
    tx = ch.sender.clone()
    ch.close()
    consumer: tuple[Callable[..., None], tuple[object, ...]]
    if way == "sync":
        consumer = (_sync_consumer, (ch.receiver,))
    else:
        consumer = (_async_consumer, (ch.receiver, way == "async_many"))
    try:
        return throughput(
            ctx,
            count=count,
            producers=1,
            consumers=1,
            producer=lambda n: (channel_producer, (tx, n, Items(0))),
            consumer=consumer,
            after_producers=lambda: None,
        )
    finally:
        tx.close()
        ch.receiver.close()


def _aioprocessing(ctx: BaseContext, count: int) -> float:
    q = _aio_queue()
    assert q is not None
    return throughput(
        ctx,
        count=count,
        producers=1,
        consumers=1,
        producer=lambda n: (_aio_producer, (q, n)),
        consumer=(_aio_consumer, (q,)),
        after_producers=lambda: q.put(None),
    )


def _spec_maker(backend: str, server: Any) -> Callable[[], str]:
    """What opens a fresh channel of ``backend``: on redis, a new name on the private server."""
    if backend != "redis":
        return lambda: backend
    return lambda: f"redis://127.0.0.1:{server.port}/bench-async-{time.monotonic_ns()}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the contenders and print rates and ratios."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", nargs="+", default=["queue", "pipe"])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    ctx = multiprocessing.get_context("fork")
    server: Any = None
    if "redis" in args.backend:
        from bench_redis import PrivateRedis  # noqa: PLC0415 (needs redis-py)

        server = PrivateRedis()
    runs: dict[str, Callable[[], float]] = {}
    for backend in args.backend:
        spec = _spec_maker(backend, server)
        for way in ("sync", "async", "async_many"):
            runs[f"{backend} {way}"] = (
                lambda s=spec, w=way: _channel(ctx, s, args.count, w)  # type: ignore[misc]
            )
    has_aio = _aio_queue() is not None
    if has_aio:
        runs["aioprocessing coro_get"] = lambda: _aioprocessing(ctx, args.count)
    rates: dict[str, list[float]] = {key: [] for key in runs}
    keys = list(runs)
    try:
        for r in range(args.repeat):
            for key in keys if r % 2 == 0 else keys[::-1]:
                print(f"round {r + 1}: {key}", file=sys.stderr, flush=True)
                rates[key].append(runs[key]())
    finally:
        if server is not None:
            server.stop()

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(rates[a], rates[b], strict=True))

    print(f"{args.count:,} small ints, 1 -> 1, median of {args.repeat} rounds")
    for key in keys:
        print(f"{key:28} {statistics.median(rates[key]):>12,.0f} items/s")
    print()
    for backend in args.backend:
        same = ratio(f"{backend} async", f"{backend} sync")
        print(f"{backend}: async / sync = {same:.2f} (goal 0.8)")
        if has_aio:
            vs = ratio(f"{backend} async", "aioprocessing coro_get")
            print(f"{backend}: async / aioprocessing = {vs:.2f} (goal 3)")
    if not has_aio:
        print("aioprocessing is not installed: no comparison with it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
