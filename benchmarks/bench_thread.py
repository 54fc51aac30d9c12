"""The ``thread`` backend's goals, as one ratio table measured in one run.

- one producer thread and one consumer thread, small items (ints):
  ``send``/``recv`` on a thread channel vs ``queue.Queue`` ``put``/``get``
  (goal >= 3x);
- a sync producer thread and an asyncio consumer: ``send`` / ``await arecv()``
  vs janus ``sync_q.put`` / ``await async_q.get()`` (goal >= 1.5x).

Each round runs both sides back to back, the order swapped every round; the
ratio is the median of the per-round ratios. The asyncio rows also report how
many threads the process had while the consumer waited (no helper thread per
call: the producer and the main thread only). janus is optional
(``pip install typed-channels[bench]``). Run:
``python benchmarks/bench_thread.py [--count N] [--repeat R] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import queue
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import channels

Run = Callable[[int], float]


def _threads(produce: Callable[[], None], consume: Callable[[], None]) -> float:
    """Seconds from starting the producer thread until ``consume`` returned here."""
    producer = threading.Thread(target=produce)
    started = time.perf_counter()
    producer.start()
    consume()
    elapsed = time.perf_counter() - started
    producer.join()
    return elapsed


def queue_rate(n: int) -> float:
    q: queue.Queue[int] = queue.Queue()

    def produce() -> None:
        put = q.put
        for i in range(n):
            put(i)

    def consume() -> None:
        get = q.get
        for _ in range(n):
            get()

    return n / _threads(produce, consume)


def thread_rate(n: int) -> float:
    ch = channels.open_channel[int]("thread")
    tx = ch.clone()
    ch.close()

    def produce() -> None:
        with tx:
            send = tx.send
            for i in range(n):
                send(i)

    def consume() -> None:
        recv = ch.receiver.recv
        for _ in range(n):
            recv()

    return n / _threads(produce, consume)


#: Thread counts seen while the thread channel's asyncio consumer ran (main + producer is 2).
_seen_threads: list[int] = []


async def _watch_threads(stop: asyncio.Event, seen: list[int]) -> None:
    while not stop.is_set():
        seen.append(threading.active_count())
        await asyncio.sleep(0.001)


def _async_threads(make: Callable[[], Any], n: int, seen: list[int]) -> float:
    """Run a producer thread and an asyncio consumer built by ``make`` (inside the loop)."""

    async def main() -> float:
        produce, consume = make()
        stop = asyncio.Event()
        watcher = asyncio.ensure_future(_watch_threads(stop, seen))
        producer = threading.Thread(target=produce)
        started = time.perf_counter()
        producer.start()
        await consume()
        elapsed = time.perf_counter() - started
        stop.set()
        await watcher
        producer.join()
        return elapsed

    return n / asyncio.run(main())


def janus_rate(n: int) -> float:
    janus = importlib.import_module("janus")

    def make() -> tuple[Callable[[], None], Callable[[], Any]]:
        q = janus.Queue()

        def produce() -> None:
            put = q.sync_q.put
            for i in range(n):
                put(i)

        async def consume() -> None:
            get = q.async_q.get
            for _ in range(n):
                await get()
            q.close()
            await q.wait_closed()

        return produce, consume

    return _async_threads(make, n, [])


def thread_async_rate(n: int) -> float:
    def make() -> tuple[Callable[[], None], Callable[[], Any]]:
        ch = channels.open_channel[int]("thread")
        tx = ch.clone()
        ch.close()

        def produce() -> None:
            with tx:
                send = tx.send
                for i in range(n):
                    send(i)

        async def consume() -> None:
            arecv = ch.receiver.arecv
            for _ in range(n):
                await arecv()

        return produce, consume

    return _async_threads(make, n, _seen_threads)


def _ratio(ours: Run, theirs: Run, n: int, repeat: int) -> tuple[float, float, float]:
    """Median per-round (ours / theirs) and the median rates, the order swapped each round."""
    ratios: list[float] = []
    mine: list[float] = []
    others: list[float] = []
    for r in range(repeat):
        if r % 2:
            b = theirs(n)
            a = ours(n)
        else:
            a = ours(n)
            b = theirs(n)
        mine.append(a)
        others.append(b)
        ratios.append(a / b)
    return statistics.median(ratios), statistics.median(mine), statistics.median(others)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000, help="items per round")
    parser.add_argument("--repeat", type=int, default=7, help="rounds per row")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    rows: list[dict[str, object]] = []

    def row(name: str, anchor: str, goal: float, ours: Run, theirs: Run | None) -> None:
        if theirs is None:
            rows.append({"row": name, "anchor": anchor, "skipped": "pip install janus"})
            return
        _seen_threads.clear()
        ratio, mine, other = _ratio(ours, theirs, args.count, args.repeat)
        rows.append(
            {
                "row": name,
                "anchor": anchor,
                "items/s": round(mine),
                "anchor items/s": round(other),
                "ratio": round(ratio, 2),
                "goal": goal,
                "met": ratio >= goal,
                **({"most threads": max(_seen_threads)} if _seen_threads else {}),
            }
        )

    row("thread send/recv, 1+1 threads", "queue.Queue put/get", 3.0, thread_rate, queue_rate)
    try:
        importlib.import_module("janus")
        janus: Run | None = janus_rate
    except ImportError:
        janus = None
    row("thread send / await arecv", "janus sync put / async get", 1.5, thread_async_rate, janus)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        print("  ".join(f"{k}={v}" for k, v in r.items()))


if __name__ == "__main__":
    main()
