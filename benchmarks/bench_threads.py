"""A thread-pool consumer: 8 threads on one receiver beside 1 thread, on every backend.

A producer process sends ``--count`` small ints; in the consumer process,
``--threads`` threads (8) all iterate one ``ch.receiver`` until the end, beside
one thread doing the same. The rate is items over the time from the common
start to the last item taken. Each round runs both (order swapped every
round); the ratio is the median of the per-round ratios.

Goal: 8 threads >= 0.9x one thread. Run:
``python benchmarks/bench_threads.py [--backend pipe queue ...] [--count N] [--repeat R]``
(``redis`` needs redis-server; a private one is started).
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import channels

GOAL = 0.9


def _produce(sender: channels.Sender[int], count: int, start: Any) -> None:
    start.wait()
    with sender:
        for i in range(count):
            sender.send(i)


def _rate(spec: str, count: int, threads: int) -> float:
    ctx = multiprocessing.get_context("fork")
    ch = channels.open_channel[int](spec)
    start = ctx.Event()
    producer = ctx.Process(target=_produce, args=(ch.clone(), count, start))
    producer.start()
    ch.close()
    got = [0] * threads

    def consume(k: int) -> None:
        for _ in ch.receiver:
            got[k] += 1

    pool = [threading.Thread(target=consume, args=(k,)) for k in range(threads)]
    for thread in pool:
        thread.start()
    started = time.monotonic()
    start.set()
    for thread in pool:
        thread.join()
    elapsed = time.monotonic() - started
    producer.join()
    if sum(got) != count:
        raise SystemExit(f"{spec}: {sum(got)} of {count} items arrived")
    return count / elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--backend", nargs="+", default=["pipe", "queue", "simplequeue", "manager", "redis"]
    )
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    server: Any = None
    if "redis" in args.backend:
        if not shutil.which("redis-server"):
            args.backend.remove("redis")
        else:
            from bench_redis import PrivateRedis  # noqa: PLC0415 (needs redis-py)

            server = PrivateRedis()
    rows: list[tuple[str, float, float, float]] = []
    try:
        for backend in args.backend:
            ones: list[float] = []
            pools: list[float] = []
            for r in range(args.repeat):
                print(f"round {r + 1}: {backend}", file=sys.stderr, flush=True)
                order = (1, args.threads) if r % 2 == 0 else (args.threads, 1)
                for n in order:
                    spec = backend
                    if backend == "redis":  # a fresh channel each time: an ended one stays ended
                        spec = f"redis://127.0.0.1:{server.port}/threads-{time.monotonic_ns()}"
                    (ones if n == 1 else pools).append(_rate(spec, args.count, n))
            ratio = statistics.median(p / o for p, o in zip(pools, ones, strict=True))
            rows.append((backend, statistics.median(ones), statistics.median(pools), ratio))
    finally:
        if server:
            server.stop()
    print(f"{args.count:,} small ints, 1 producer process -> threads on one receiver")
    print(f"{'backend':12} {'1 thread':>12} {f'{args.threads} threads':>12} {'ratio':>7}")
    for backend, one, pool, ratio in rows:
        verdict = "meets" if ratio >= GOAL else "misses"
        print(f"{backend:12} {one:12,.0f} {pool:12,.0f} {ratio:7.2f}  {verdict} the goal {GOAL}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
