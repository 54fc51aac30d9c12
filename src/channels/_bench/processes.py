"""Starting, timing and stopping the processes of one measurement."""

from __future__ import annotations

import math
import queue as stdlib_queue
import time
from collections.abc import Callable, Sequence
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue as MPQueue
from multiprocessing.synchronize import Event, Semaphore
from typing import cast

from .model import BenchError

__all__ = ["STEP_TIMEOUT", "StartLine", "Target", "ping_pong", "stop", "throughput"]

#: How long any one step may take before the run is declared stuck, in seconds.
STEP_TIMEOUT = 120.0
#: Round trips discarded before latency samples are taken.
_WARMUP_PINGS = 50

#: A child process's function and its leading arguments.
Target = tuple[Callable[..., None], tuple[object, ...]]


class StartLine:
    """Holds every process of a run until all are ready, so that timing starts for all at once.

    (A ``multiprocessing.Barrier`` would do, but it takes its counters from the
    shared heap, which then keeps a file open for the rest of the process's life.)
    """

    def __init__(self, ctx: BaseContext) -> None:
        self.ready: Semaphore = ctx.Semaphore(0)
        self.go: Event = ctx.Event()

    def wait(self) -> None:
        """In a child: say it is ready, then wait for the start."""
        self.ready.release()
        if not self.go.wait(STEP_TIMEOUT):
            raise BenchError("the run did not start in time")

    def release(self, processes: Sequence[BaseProcess]) -> float:
        """In the parent: wait until all ``processes`` are ready, start them, return the time."""
        deadline = time.monotonic() + STEP_TIMEOUT
        for _ in processes:
            while not self.ready.acquire(timeout=0.2):
                _check_exits(processes)
                if time.monotonic() > deadline:
                    raise BenchError("the benchmark processes did not start in time")
        now = time.monotonic()
        self.go.set()
        return now


def _process(
    ctx: BaseContext, target: Callable[..., None], args: tuple[object, ...], name: str
) -> BaseProcess:
    make = cast("Callable[..., BaseProcess]", ctx.Process)  # type: ignore[attr-defined]
    return make(target=target, args=args, name=name, daemon=True)


def _split(count: int, parts: int) -> list[int]:
    return [count // parts + (i < count % parts) for i in range(parts)]


def stop(processes: Sequence[BaseProcess]) -> None:
    """Terminate (then kill) whichever of ``processes`` still run, and reap them."""
    started = [p for p in processes if p.pid is not None]
    for p in started:
        if p.is_alive():
            p.terminate()
    for p in started:
        p.join(5)
        if p.is_alive():
            p.kill()
            p.join()


def _check_exits(processes: Sequence[BaseProcess]) -> None:
    for p in processes:
        if p.exitcode not in (None, 0):
            raise BenchError(f"benchmark process {p.name} exited with code {p.exitcode}")


def _join(processes: Sequence[BaseProcess], deadline: float) -> None:
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            raise BenchError(f"benchmark process {p.name} did not finish in time")
    _check_exits(processes)


def _collect(
    results: MPQueue[tuple[int, float]],
    expected: int,
    watched: Sequence[BaseProcess],
    deadline: float,
) -> list[tuple[int, float]]:
    reports: list[tuple[int, float]] = []
    while len(reports) < expected:
        try:
            reports.append(results.get(timeout=0.2))
        except stdlib_queue.Empty:
            _check_exits(watched)
            if time.monotonic() > deadline:
                raise BenchError("the consumers did not report in time") from None
    return reports


def throughput(
    ctx: BaseContext,
    *,
    count: int,
    producers: int,
    consumers: int,
    producer: Callable[[int], Target],
    consumer: Target,
    after_producers: Callable[[], None],
) -> float:
    """Run one throughput measurement; return items per second.

    ``producer(n)`` gives the target and leading arguments of a producer that
    sends ``n`` items (the start line is appended); ``consumer`` those of a
    consumer (the start line and a results queue are appended: it puts
    ``(items received, time of the last)`` there). ``after_producers`` runs
    once every producer has exited (to send poison pills).
    """
    start_line = StartLine(ctx)
    results: MPQueue[tuple[int, float]] = ctx.Queue()
    senders: list[BaseProcess] = []
    for i, n in enumerate(_split(count, producers)):
        target, args = producer(n)
        senders.append(_process(ctx, target, (*args, start_line), f"bench-producer-{i}"))
    receivers = [
        _process(ctx, consumer[0], (*consumer[1], start_line, results), f"bench-consumer-{i}")
        for i in range(consumers)
    ]
    everyone: list[BaseProcess] = [*senders, *receivers]
    try:
        for p in everyone:
            p.start()
        start = start_line.release(everyone)
        deadline = start + STEP_TIMEOUT
        _join(senders, deadline)
        after_producers()
        reports = _collect(results, consumers, receivers, deadline)
        _join(receivers, deadline)
    finally:
        stop(everyone)
        results.close()
        results.join_thread()
    received = sum(got for got, _ in reports)
    if received != count:
        raise BenchError(f"the consumers received {received} items, {count} were sent")
    elapsed = max(last for _, last in reports) - start
    return count / max(elapsed, 1e-9)


def ping_pong(
    ctx: BaseContext,
    *,
    pings: int,
    payload: object,
    echo: Target,
    put: Callable[[object], None],
    get: Callable[[], object],
    finish: Callable[[], None],
) -> tuple[float, float]:
    """Time round trips to an echoing child; return p50 and p99 in microseconds."""
    child = _process(ctx, echo[0], echo[1], "bench-echo")
    child.start()
    try:
        clock = time.perf_counter_ns
        samples: list[int] = []
        for i in range(_WARMUP_PINGS + pings):
            t = clock()
            put(payload)
            get()
            if i >= _WARMUP_PINGS:
                samples.append(clock() - t)
        finish()
        _join([child], time.monotonic() + STEP_TIMEOUT)
    finally:
        stop([child])
    return _percentile(samples, 0.50) / 1000, _percentile(samples, 0.99) / 1000


def _percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return float(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)])
