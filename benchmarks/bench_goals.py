"""The throughput goals of the "beyond the primitive" issue, as one ratio table.

Each row is a channel beside what it must beat, measured in the same rounds
(the order reversed every round), 1 producer and 1 consumer process:

- ``queue`` unbatched vs the faster of ``multiprocessing.Queue`` and
  ``faster_fifo.Queue`` (goal >= 1.5x);
- ``pipe`` unbatched vs ``multiprocessing.Pipe`` (goal >= 2.0x);
- batched, 100 per call, vs ``faster_fifo`` put_many/get_many(100) (goal >= 6x)
  and vs a raw ``os.pipe`` with a 64 KiB buffered writer, one pickle per item
  (goal >= 0.9x);
- batches of 100 small tuples vs the list trick, ``multiprocessing.Queue``
  carrying one list of 100 per put/get (goal >= 1.0x), and vs the same raw
  buffered pipe (goal >= 0.9x);
- a 64 MiB numpy array (bytes without numpy), the receiver reading every page,
  vs ``multiprocessing.Queue`` (goal >= 12x): 4 arrays sent at once, and a
  steady stream of 64 with ``maxsize=2`` on both sides (the shape in which
  shared memory is reused);
- 64 MiB ``bytes`` on ``pipe`` and ``queue``, the receiver reading every
  page, vs a hand-rolled ``multiprocessing.shared_memory`` copy (goal >= 1.0x):
  its producer copies each item into a new block and puts the block's name in
  a ``multiprocessing.Queue``, its consumer copies the block out to ``bytes``,
  closes and unlinks it. 4 items sent at once, and a steady stream of
  ``--stream`` (32) with at most 2 waiting: ``maxsize=2`` on ``queue`` and the
  anchor's ``Queue(2)``; ``pipe``, which has no bound, paced by the consumer,
  which acknowledges each item on receipt (a window of 2).

Small items are ints. The ratio is the median of the per-round ratios.
faster_fifo and numpy are optional (``pip install typed-channels[bench]``):
without them their rows say so. Run:
``python benchmarks/bench_goals.py [--count N] [--repeat R] [--json]``;
``--only bytes`` runs the rows of 64 MiB ``bytes`` alone.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import pickle
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.queues import Queue as MPQueue
from multiprocessing.shared_memory import SharedMemory
from typing import cast

from channels import ChannelOptions, Receiver, Sender, open_channel
from channels._bench import optional
from channels._bench.measure import Shape, Target, channel_rate, fifo_rate, raw_rate
from channels._bench.model import BenchError
from channels._bench.primitives import make_raw
from channels._bench.processes import STEP_TIMEOUT, StartLine, throughput
from channels._bench.workers import Items, touch

_BUFFER = 64 << 10
#: Large items waiting at most in the steady streams: maxsize, or the pipe's window.
_WINDOW = 2


def _target(backend: str) -> Target:
    return Target(backend, backend, {}, 0, remote=False, many=True)


def _os_pipe_producer(wfd: int, rfd: int, n: int, items: Items, start: StartLine) -> None:
    os.close(rfd)
    out = io.BufferedWriter(io.FileIO(wfd, "w"), _BUFFER)
    pickler = pickle.Pickler(out, pickle.HIGHEST_PROTOCOL)
    dump = pickler.dump
    start.wait()
    if items.tuples:  # one complete pickle per item: nothing kept in a memo between them
        write, dumps, protocol = out.write, pickle.dumps, pickle.HIGHEST_PROTOCOL
        for batch, times in items.batches(n):
            for _ in range(times):
                for item in batch:
                    write(dumps(item, protocol))
    else:
        for i in range(n):
            dump(i)  # ints leave nothing in the memo
    dump(None)
    out.flush()
    out.close()


def _os_pipe_consumer(
    wfd: int, rfd: int, items: Items, start: StartLine, results: MPQueue[tuple[int, float]]
) -> None:
    os.close(wfd)
    source = io.BufferedReader(io.FileIO(rfd, "r"), _BUFFER)
    load = pickle.load
    count, last = 0, 0.0
    start.wait()
    while load(source) is not None:
        count += 1
    last = time.monotonic()
    results.put((count, last))


def _os_pipe_rate(ctx: BaseContext, shape: Shape) -> float:
    rfd, wfd = os.pipe()
    try:
        return throughput(
            ctx,
            count=shape.count,
            producers=1,
            consumers=1,
            producer=lambda n: (_os_pipe_producer, (wfd, rfd, n, shape.items)),
            consumer=(_os_pipe_consumer, (wfd, rfd, shape.items)),
            after_producers=lambda: None,
        )
    finally:
        os.close(rfd)
        os.close(wfd)


def _shm_producer(
    names: MPQueue[tuple[str, int] | None], n: int, size: int, start: StartLine
) -> None:
    """The anchor's producer: each item copied into a new shared memory block, its name put."""
    data = b"x" * size
    start.wait()
    for _ in range(n):
        block = SharedMemory(create=True, size=size)
        cast(memoryview, block.buf)[:size] = data
        block.close()  # the consumer unlinks it
        names.put((block.name, size))


def _shm_consumer(
    names: MPQueue[tuple[str, int] | None], start: StartLine, results: MPQueue[tuple[int, float]]
) -> None:
    """The anchor's consumer: attach, copy out to bytes, close and unlink; read every page."""
    count, last = 0, 0.0
    start.wait()
    while (got := names.get(timeout=STEP_TIMEOUT)) is not None:
        name, size = got
        block = SharedMemory(name)
        item = bytes(cast(memoryview, block.buf)[:size])
        block.close()
        block.unlink()
        touch(item)
        count += 1
        last = time.monotonic()
    results.put((count, last))


def _shm_rate(ctx: BaseContext, count: int, size: int, maxsize: int) -> float:
    # One tracker for every process, started here (untimed): each child would start its own.
    resource_tracker.ensure_running()
    names: MPQueue[tuple[str, int] | None] = ctx.Queue(maxsize)
    try:
        return throughput(
            ctx,
            count=count,
            producers=1,
            consumers=1,
            producer=lambda n: (_shm_producer, (names, n, size)),
            consumer=(_shm_consumer, (names,)),
            after_producers=lambda: names.put(None),
        )
    finally:
        names.close()
        names.join_thread()


def _bytes_producer(
    tx: Sender[object], n: int, size: int, acks: Connection | None, start: StartLine
) -> None:
    """Send the same ``bytes`` ``n`` times; with ``acks``, at most ``_WINDOW`` unacknowledged."""
    data = b"x" * size
    with tx:
        start.wait()
        for i in range(n):
            if acks is not None and i >= _WINDOW:
                if not acks.poll(STEP_TIMEOUT):
                    raise BenchError("the consumer acknowledged no item in time")
                acks.recv_bytes()
            tx.send(data)


def _bytes_consumer(
    rx: Receiver[object],
    acks: Connection | None,
    start: StartLine,
    results: MPQueue[tuple[int, float]],
) -> None:
    """Receive until the end, acknowledging each item on receipt; read every page."""
    count, last = 0, 0.0
    start.wait()
    for item in rx:
        if acks is not None:
            acks.send_bytes(b"")
        touch(cast(bytes, item))
        count += 1
        last = time.monotonic()
    results.put((count, last))


def _bytes_rate(ctx: BaseContext, backend: str, count: int, size: int, window: bool) -> float:
    """``bytes`` of ``size`` on ``backend``; with ``window``, at most ``_WINDOW`` waiting."""
    bounded = window and backend == "queue"
    options: ChannelOptions = {"maxsize": _WINDOW} if bounded else {}
    ch = open_channel[object](backend, **options)
    tx = ch.sender.clone()
    ch.close()
    reader, writer = ctx.Pipe(duplex=False) if window and not bounded else (None, None)
    try:
        return throughput(
            ctx,
            count=count,
            producers=1,
            consumers=1,
            producer=lambda n: (_bytes_producer, (tx, n, size, reader)),
            consumer=(_bytes_consumer, (ch.receiver, writer)),
            after_producers=lambda: None,
        )
    finally:
        tx.close()
        ch.receiver.close()
        for end in (reader, writer):
            if end is not None:
                end.close()


Run = Callable[[], float]


def _rows(
    ctx: BaseContext, count: int, large: int, stream: int
) -> list[tuple[str, Run, list[tuple[str, Run]], float]]:
    """(row, channel run, [(baseline, run)], goal): the faster baseline is the one compared."""
    small = Shape(Items(0), count, 1, 1)
    batched = Shape(Items(0, batch=100), count * 10, 1, 1)
    tuples = Shape(Items(0, batch=100, tuples=True), count * 10, 1, 1)
    big = Shape(Items(large, large=True), 4, 1, 1)
    fifo = optional.faster_fifo() is not None
    rows: list[tuple[str, Run, list[tuple[str, Run]], float]] = []

    def raw(backend: str, shape: Shape) -> Run:
        return lambda: raw_rate(ctx, shape, make_raw(backend, ctx, 0, False))

    def chan(backend: str, shape: Shape) -> Run:
        return lambda: channel_rate(ctx, shape, _target(backend))

    def ff(shape: Shape) -> list[tuple[str, Run]]:
        return [("faster_fifo", lambda: fifo_rate(ctx, shape))] if fifo else []

    rows.append(
        ("queue, ints", chan("queue", small), [("mp.Queue", raw("queue", small)), *ff(small)], 1.5)
    )
    rows.append(("pipe, ints", chan("pipe", small), [("mp.Pipe", raw("pipe", small))], 2.0))
    for backend in ("pipe", "queue"):
        rows.append((f"{backend}, batches of 100", chan(backend, batched), ff(batched), 6.0))
        rows.append(
            (
                f"{backend}, batches of 100",
                chan(backend, batched),
                [("os.pipe+64KiB writer", lambda: _os_pipe_rate(ctx, batched))],
                0.9,
            )
        )
    for backend in ("pipe", "queue"):
        name = f"{backend}, 100 tuples"
        rows.append((name, chan(backend, tuples), [("mp.Queue lists", raw("queue", tuples))], 1.0))
        rows.append(
            (
                name,
                chan(backend, tuples),
                [("os.pipe+64KiB writer", lambda: _os_pipe_rate(ctx, tuples))],
                0.9,
            )
        )
    for backend in ("queue", "pipe"):
        rows.append(
            (
                f"{backend}, {large >> 20} MiB array",
                chan(backend, big),
                [("mp.Queue", raw("queue", big))],
                12.0,
            )
        )
    # A steady stream: the producer paced by the consumer (maxsize 2 on both sides).
    paced = Shape(Items(large, large=True), 64, 1, 1)
    rows.append(
        (
            f"queue, {large >> 20} MiB, paced",
            lambda: channel_rate(ctx, paced, Target("queue", "queue", {}, 2, False, True)),
            [("mp.Queue(2)", lambda: raw_rate(ctx, paced, make_raw("queue", ctx, 2, False)))],
            12.0,
        )
    )
    rows += _bytes_rows(ctx, large, stream)
    return rows


def _bytes_rows(
    ctx: BaseContext, large: int, stream: int
) -> list[tuple[str, Run, list[tuple[str, Run]], float]]:
    """``bytes`` on pipe and queue vs the hand-rolled shared memory copy: a burst, a stream."""

    def chan(backend: str, n: int, window: bool) -> Run:
        return lambda: _bytes_rate(ctx, backend, n, large, window)

    def anchor(n: int, maxsize: int) -> Run:
        return lambda: _shm_rate(ctx, n, large, maxsize)

    mib = large >> 20
    rows: list[tuple[str, Run, list[tuple[str, Run]], float]] = []
    for backend in ("pipe", "queue"):
        rows.append(
            (
                f"{backend}, {mib} MiB bytes",
                chan(backend, 4, False),
                [("shm copy", anchor(4, 0))],
                1.0,
            )
        )
    for backend in ("pipe", "queue"):
        rows.append(
            (
                f"{backend}, {mib} MiB bytes, stream",
                chan(backend, stream, True),
                [(f"shm copy, Queue({_WINDOW})", anchor(stream, _WINDOW))],
                1.0,
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run every row ``--repeat`` times and print the ratio table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="small items per run")
    parser.add_argument("--large", type=int, default=64 << 20, help="bytes per large item")
    parser.add_argument(
        "--stream", type=int, default=32, help="large bytes items per steady stream"
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--only", help="run only the rows whose name contains this")
    args = parser.parse_args(argv)
    ctx = multiprocessing.get_context("fork")
    rows = [
        r
        for r in _rows(ctx, args.count, args.large, args.stream)
        if not args.only or args.only in r[0]
    ]
    # Every distinct run once per round: the same channel run serves several rows.
    runs: dict[str, Run] = {}
    for name, mine, theirs, _ in rows:
        runs[f"channel {name}"] = mine
        for label, run in theirs:
            runs[f"{label} for {name}"] = run
    rates: dict[str, list[float]] = {key: [] for key in runs}
    keys = list(runs)
    for r in range(args.repeat):
        for key in keys if r % 2 == 0 else keys[::-1]:
            print(f"round {r + 1}: {key}", file=sys.stderr, flush=True)
            rates[key].append(runs[key]())
    table: list[dict[str, object]] = []
    for name, _, theirs, goal in rows:
        ours = rates[f"channel {name}"]
        if not theirs:
            table.append({"row": name, "vs": "faster_fifo (not installed)", "goal": goal})
            continue
        # Per round, the faster of the baselines.
        best = [
            max(rates[f"{label} for {name}"][i] for label, _ in theirs) for i in range(args.repeat)
        ]
        ratio = statistics.median(a / b for a, b in zip(ours, best, strict=True))
        table.append(
            {
                "row": name,
                "vs": " / ".join(label for label, _ in theirs),
                "channel_per_s": statistics.median(ours),
                "baseline_per_s": statistics.median(best),
                "ratio": ratio,
                "goal": goal,
                "met": ratio >= goal,
            }
        )
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    print(f"{'row':26} {'vs':32} {'chan/s':>12} {'base/s':>12} {'ratio':>6} {'goal':>5}  met")
    for row in table:
        if "ratio" not in row:
            print(
                f"{row['row']:26} {row['vs']:32} {'-':>12} {'-':>12} {'-':>6} {row['goal']:>5}  -"
            )
            continue
        print(
            f"{row['row']:26} {row['vs']:32} {row['channel_per_s']:>12,.0f} "
            f"{row['baseline_per_s']:>12,.0f} {row['ratio']:>6.2f} {row['goal']:>5}  "
            f"{'yes' if row['met'] else 'NO'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
