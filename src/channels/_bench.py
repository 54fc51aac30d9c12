"""Throughput and latency of each backend, beside the stdlib primitive it wraps.

Every round runs one workload twice, on the raw primitive and on the channel,
back to back, the order swapped from one round to the next; the report gives
the median over rounds, since a shared machine is noisy. The workload:
``producers`` processes send ``count`` items in all (split evenly) to
``consumers`` processes, timed from a common start to the last item received.
The raw primitive's consumers stop on a poison pill (one per consumer, sent
once every producer has exited); the channel's stop at the end of the channel.
Latency is a separate ping-pong run between two processes over two
primitives (or two channels): its figures are round trips.

It needs nothing beyond the standard library, so ``channels bench`` runs on
any installation.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import platform
import queue as stdlib_queue
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue as MPQueue
from multiprocessing.synchronize import Event, Lock, Semaphore
from typing import Protocol, cast

from ._config import parse_spec
from ._errors import ConfigError, EndOfChannel
from ._open import ChannelOptions, open_channel
from ._protocols import Receiver, Sender
from ._registry import get_backend

__all__ = [
    "LATENCY_METHOD",
    "LOCAL_BACKENDS",
    "RAW_PRIMITIVES",
    "BackendResult",
    "BenchError",
    "Report",
    "Side",
    "Workload",
    "format_table",
    "run",
]

#: The backends measured when none is named (``manager`` is slow, so only on request).
LOCAL_BACKENDS = ("pipe", "queue", "simplequeue")

#: The stdlib primitive each built-in backend wraps: the baseline it is compared with.
RAW_PRIMITIVES = {
    "pipe": "multiprocessing.Pipe(duplex=False) send/recv",
    "queue": "multiprocessing.Queue put/get",
    "simplequeue": "multiprocessing.SimpleQueue put/get",
    "manager": "multiprocessing.Manager().Queue() put/get",
}

LATENCY_METHOD = (
    "ping-pong round trip between two processes (separate run: one item out on one "
    "primitive or channel, echoed back on a second), p50/p99 in microseconds"
)

RATIO_METHOD = (
    "median of the per-round channel/raw throughput ratios (each round runs both back to "
    "back), so it need not equal the quotient of the two medians"
)

#: Round trips discarded before latency samples are taken.
_WARMUP_PINGS = 50
#: How long any one step may take before the run is declared stuck, in seconds.
_STEP_TIMEOUT = 120.0


class BenchError(RuntimeError):
    """A measurement could not be completed (a process died or an item went missing)."""


@dataclass(frozen=True)
class Workload:
    """What each run does.

    Attributes:
        count: items sent in all, split evenly across the producers.
        size: bytes in each item's payload; 0 sends small ints instead.
        producers: producer processes.
        consumers: consumer processes.
        context: the start method; None means the platform default.
        repeat: rounds; each runs the raw primitive and the channel once.
        pings: latency round trips per run (after a short warm-up).
    """

    count: int = 50_000
    size: int = 64
    producers: int = 1
    consumers: int = 1
    context: str | None = None
    repeat: int = 3
    pings: int = 2_000

    def __post_init__(self) -> None:
        for name in ("count", "producers", "consumers", "repeat", "pings"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a whole number >= 1, not {value!r}")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise ConfigError(
                f"size must be a number of bytes >= 0 (0 sends ints), not {self.size!r}"
            )
        methods = multiprocessing.get_all_start_methods()
        if self.context is not None and self.context not in methods:
            raise ConfigError(
                f"unknown start method {self.context!r}; choose one of {', '.join(methods)}"
            )

    @property
    def payload(self) -> str:
        """``"bytes"`` or ``"int"``: what each item carries."""
        return "bytes" if self.size else "int"


@dataclass(frozen=True)
class Side:
    """One side (raw primitive or channel) of a backend's measurement, as medians over rounds.

    Attributes:
        msgs_per_s: items per second, median over rounds.
        mb_per_s: payload megabytes (10**6 bytes) per second; None for int payloads.
        p50_us: median round-trip latency in microseconds (median over rounds).
        p99_us: 99th percentile round-trip latency in microseconds (median over rounds).
        rounds_msgs_per_s: the throughput of each round, in the order run.
    """

    msgs_per_s: float
    mb_per_s: float | None
    p50_us: float
    p99_us: float
    rounds_msgs_per_s: tuple[float, ...]


@dataclass(frozen=True)
class BackendResult:
    """A backend's figures beside its raw primitive's.

    Attributes:
        backend: the backend name.
        spec: the spec the channel was opened with.
        raw_primitive: what the baseline ran on; None for a backend with no known one.
        raw: the baseline's figures, or None.
        channel: the channel's figures.
        ratio: channel/raw throughput (median of the per-round ratios), or None.
        notes: anything that makes the comparison less than like for like.
    """

    backend: str
    spec: str
    raw_primitive: str | None
    raw: Side | None
    channel: Side
    ratio: float | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    """A whole bench run: the workload, where it ran, and one result per backend."""

    workload: Workload
    start_method: str
    results: tuple[BackendResult, ...]
    python: str = field(default_factory=platform.python_version)
    machine: str = field(default_factory=platform.platform)
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)

    def to_dict(self) -> dict[str, object]:
        """The report as plain data, ready for ``json.dumps``."""
        data = asdict(self)
        data["workload"]["payload"] = self.workload.payload
        data["latency_method"] = LATENCY_METHOD
        data["ratio_method"] = RATIO_METHOD
        return data


# -- the raw primitives --------------------------------------------------------------


class _RawEnds(Protocol):
    """Both ends of a raw primitive, picklable to a child at start."""

    def putter(self) -> Callable[[object], None]: ...

    def getter(self) -> Callable[[], object]: ...


class _PipeEnds:
    """``Pipe(duplex=False)``; locked only when several processes share an end."""

    def __init__(
        self, reader: Connection, writer: Connection, rlock: Lock | None, wlock: Lock | None
    ) -> None:
        self.reader, self.writer, self.rlock, self.wlock = reader, writer, rlock, wlock

    def putter(self) -> Callable[[object], None]:
        send, lock = self.writer.send, self.wlock
        if lock is None:
            return send

        def locked_send(item: object) -> None:
            with lock:
                send(item)

        return locked_send

    def getter(self) -> Callable[[], object]:
        recv, lock = self.reader.recv, self.rlock
        if lock is None:
            return recv

        def locked_recv() -> object:
            with lock:
                return recv()

        return locked_recv


class _QueueEnds:
    """Any object with ``put`` and ``get``: a Queue, a SimpleQueue or a manager's queue proxy."""

    def __init__(self, q: _PutGet) -> None:
        self.q = q

    def putter(self) -> Callable[[object], None]:
        return self.q.put

    def getter(self) -> Callable[[], object]:
        return self.q.get


class _PutGet(Protocol):
    def put(self, item: object, /) -> None: ...

    def get(self) -> object: ...


def _make_raw(
    backend: str, ctx: BaseContext, maxsize: int, shared: bool
) -> tuple[_RawEnds, Callable[[], None]]:
    """Build backend's raw primitive; return its ends and how to dispose of it."""
    if backend == "pipe":
        reader, writer = ctx.Pipe(duplex=False)
        locks = (ctx.Lock(), ctx.Lock()) if shared else (None, None)

        def close_pipe() -> None:
            reader.close()
            writer.close()

        return _PipeEnds(reader, writer, *locks), close_pipe
    if backend == "queue":
        q: MPQueue[object] = ctx.Queue(maxsize)

        def close_queue() -> None:
            q.close()
            q.join_thread()

        return _QueueEnds(q), close_queue
    if backend == "simplequeue":
        sq = ctx.SimpleQueue()
        return _QueueEnds(sq), sq.close
    if backend == "manager":
        manager = ctx.Manager()
        return _QueueEnds(manager.Queue(maxsize)), manager.shutdown
    raise ConfigError(f"no raw primitive is known for backend {backend!r}")


# -- what the child processes run ----------------------------------------------------


class _StartLine:
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
        if not self.go.wait(_STEP_TIMEOUT):
            raise BenchError("the run did not start in time")

    def release(self, processes: Sequence[BaseProcess]) -> float:
        """In the parent: wait until all ``processes`` are ready, start them, return the time."""
        deadline = time.monotonic() + _STEP_TIMEOUT
        for _ in processes:
            while not self.ready.acquire(timeout=0.2):
                _check_exits(processes)
                if time.monotonic() > deadline:
                    raise BenchError("the benchmark processes did not start in time")
        now = time.monotonic()
        self.go.set()
        return now


def _payload(size: int) -> object:
    return b"x" * size if size else 1


def _raw_producer(ends: _RawEnds, n: int, size: int, start: _StartLine) -> None:
    put = ends.putter()
    start.wait()
    if size:
        payload = b"x" * size
        for _ in range(n):
            put(payload)
    else:
        for i in range(n):
            put(i)


def _raw_consumer(ends: _RawEnds, start: _StartLine, results: MPQueue[tuple[int, float]]) -> None:
    get, clock = ends.getter(), time.monotonic
    count, last = 0, 0.0
    start.wait()
    while get() is not None:
        count += 1
        last = clock()
    results.put((count, last))


def _channel_producer(tx: Sender[object], n: int, size: int, start: _StartLine) -> None:
    send = tx.send
    start.wait()
    with tx:
        if size:
            payload = b"x" * size
            for _ in range(n):
                send(payload)
        else:
            for i in range(n):
                send(i)


def _channel_consumer(
    rx: Receiver[object], start: _StartLine, results: MPQueue[tuple[int, float]]
) -> None:
    clock = time.monotonic
    count, last = 0, 0.0
    start.wait()
    for _ in rx:
        count += 1
        last = clock()
    results.put((count, last))


def _raw_echo(requests: _RawEnds, replies: _RawEnds) -> None:
    get, put = requests.getter(), replies.putter()
    while (item := get()) is not None:
        put(item)


def _channel_echo(requests: Receiver[object], replies: Sender[object]) -> None:
    with replies:
        for item in requests:
            replies.send(item)


# -- running and timing --------------------------------------------------------------


def _process(
    ctx: BaseContext, target: Callable[..., None], args: tuple[object, ...], name: str
) -> BaseProcess:
    make = cast("Callable[..., BaseProcess]", ctx.Process)  # type: ignore[attr-defined]
    return make(target=target, args=args, name=name, daemon=True)


def _split(count: int, parts: int) -> list[int]:
    return [count // parts + (i < count % parts) for i in range(parts)]


def _stop(processes: Sequence[BaseProcess]) -> None:
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


def _throughput(
    ctx: BaseContext,
    workload: Workload,
    producer: Callable[[int], tuple[Callable[..., None], tuple[object, ...]]],
    consumer: tuple[Callable[..., None], tuple[object, ...]],
    after_producers: Callable[[], None],
) -> float:
    """Run one throughput measurement; return items per second.

    ``producer(n)`` gives the target and leading arguments of a producer that
    sends ``n`` items; ``consumer`` those of a consumer. ``after_producers`` runs
    once every producer has exited (to send poison pills).
    """
    w = workload
    start_line = _StartLine(ctx)
    results: MPQueue[tuple[int, float]] = ctx.Queue()
    producers: list[BaseProcess] = []
    for i, n in enumerate(_split(w.count, w.producers)):
        target, args = producer(n)
        producers.append(_process(ctx, target, (*args, start_line), f"bench-producer-{i}"))
    consumers = [
        _process(ctx, consumer[0], (*consumer[1], start_line, results), f"bench-consumer-{i}")
        for i in range(w.consumers)
    ]
    everyone: list[BaseProcess] = [*producers, *consumers]
    try:
        for p in everyone:
            p.start()
        start = start_line.release(everyone)
        deadline = start + _STEP_TIMEOUT
        _join(producers, deadline)
        after_producers()
        reports = _collect(results, w.consumers, consumers, deadline)
        _join(consumers, deadline)
    finally:
        _stop(everyone)
        results.close()
        results.join_thread()
    received = sum(count for count, _ in reports)
    if received != w.count:
        raise BenchError(f"the consumers received {received} items, {w.count} were sent")
    elapsed = max(last for _, last in reports) - start
    return w.count / max(elapsed, 1e-9)


def _ping_pong(
    ctx: BaseContext,
    *,
    workload: Workload,
    echo: tuple[Callable[..., None], tuple[object, ...]],
    put: Callable[[object], None],
    get: Callable[[], object],
    finish: Callable[[], None],
) -> tuple[float, float]:
    """Time round trips to an echoing child; return p50 and p99 in microseconds."""
    child = _process(ctx, echo[0], echo[1], "bench-echo")
    child.start()
    try:
        payload = _payload(workload.size)
        clock = time.perf_counter_ns
        samples: list[int] = []
        for i in range(_WARMUP_PINGS + workload.pings):
            t = clock()
            put(payload)
            get()
            if i >= _WARMUP_PINGS:
                samples.append(clock() - t)
        finish()
        _join([child], time.monotonic() + _STEP_TIMEOUT)
    finally:
        _stop([child])
    return _percentile(samples, 0.50) / 1000, _percentile(samples, 0.99) / 1000


def _percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return float(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)])


class _Measurer:
    """Runs the raw and channel measurements of one backend under one workload."""

    def __init__(
        self, backend: str, spec: str, options: ChannelOptions, maxsize: int, workload: Workload
    ) -> None:
        self.backend, self.spec, self.options, self.maxsize = backend, spec, options, maxsize
        self.workload = workload
        self.ctx = multiprocessing.get_context(workload.context)
        self.shared = workload.producers > 1 or workload.consumers > 1
        self.remote = False

    def raw(self) -> tuple[float, tuple[float, float]]:
        """Throughput and latency of the raw primitive."""
        return self._raw_rate(), self._raw_latency()

    def channel(self) -> tuple[float, tuple[float, float]]:
        """Throughput and latency of the channel."""
        return self._channel_rate(), self._channel_latency()

    def _raw_rate(self) -> float:
        w = self.workload
        ends, dispose = _make_raw(self.backend, self.ctx, self.maxsize, self.shared)

        def pills() -> None:
            put = ends.putter()
            for _ in range(w.consumers):
                put(None)

        try:
            return _throughput(
                self.ctx,
                w,
                lambda n: (_raw_producer, (ends, n, w.size)),
                (_raw_consumer, (ends,)),
                pills,
            )
        finally:
            dispose()

    def _raw_latency(self) -> tuple[float, float]:
        requests, dispose_requests = _make_raw(self.backend, self.ctx, self.maxsize, False)
        try:
            replies, dispose_replies = _make_raw(self.backend, self.ctx, self.maxsize, False)
            try:
                put = requests.putter()
                return _ping_pong(
                    self.ctx,
                    workload=self.workload,
                    echo=(_raw_echo, (requests, replies)),
                    put=put,
                    get=replies.getter(),
                    finish=lambda: put(None),
                )
            finally:
                dispose_replies()
        finally:
            dispose_requests()

    def _channel_rate(self) -> float:
        w = self.workload
        ch = open_channel[object](self.spec, **self.options)
        senders = iter([ch.sender.clone() for _ in range(w.producers)])
        ch.close()
        return _throughput(
            self.ctx,
            w,
            lambda n: (_channel_producer, (next(senders), n, w.size)),
            (_channel_consumer, (ch.receiver,)),
            lambda: None,
        )

    def _channel_latency(self) -> tuple[float, float]:
        requests = open_channel[object](self.spec, **self.options)
        replies = open_channel[object](self.spec, **self.options)

        def finish() -> None:
            requests.close()
            try:
                replies.recv(_STEP_TIMEOUT)
            except EndOfChannel:
                return
            raise BenchError("the echo process sent an item nobody asked for")

        return _ping_pong(
            self.ctx,
            workload=self.workload,
            echo=(_channel_echo, (requests.receiver, replies.sender)),
            put=requests.send,
            get=replies.recv,
            finish=finish,
        )


def _side(rates: Sequence[float], latencies: Sequence[tuple[float, float]], size: int) -> Side:
    rate = statistics.median(rates)
    return Side(
        msgs_per_s=rate,
        mb_per_s=rate * size / 1e6 if size else None,
        p50_us=statistics.median(p50 for p50, _ in latencies),
        p99_us=statistics.median(p99 for _, p99 in latencies),
        rounds_msgs_per_s=tuple(rates),
    )


def _plan(backends: Sequence[str] | None, spec: str | None, workload: Workload) -> list[_Measurer]:
    """Check every backend and spec before anything runs; ``ConfigError`` names the problem."""
    if spec is not None and backends:
        raise ConfigError("give either backend names or one spec, not both")
    specs = [spec] if spec is not None else list(backends or LOCAL_BACKENDS)
    if not specs:
        raise ConfigError("no backend to measure")
    plan: list[_Measurer] = []
    for text in specs:
        parsed = parse_spec(text)
        get_backend(parsed.backend)
        options: ChannelOptions = {}
        if workload.context is not None:
            options["context"] = workload.context
        # Opening one now reports a bad option before any process starts.
        open_channel[object](text, **options).close()
        maxsize = parsed.options.get("maxsize", 0)
        measurer = _Measurer(parsed.backend, text, options, int(str(maxsize) or 0), workload)
        measurer.remote = "address" in parsed.options
        plan.append(measurer)
    return plan


def run(
    backends: Sequence[str] | None = None,
    *,
    spec: str | None = None,
    workload: Workload | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Measure each backend beside its raw primitive.

    Args:
        backends: backend names; default ``LOCAL_BACKENDS``.
        spec: one channel spec (a name or URL with options) instead of names.
        workload: what to run; default ``Workload()``.
        progress: called with a short line before each step.

    Returns:
        The report, one result per backend in the order given.

    Raises:
        ConfigError: a backend, spec or workload value is not usable.
        BenchError: a measurement failed (a process died, an item went missing).
    """
    w = workload or Workload()
    plan = _plan(backends, spec, w)
    say: Callable[[str], object] = progress or _quiet
    steps = sum(w.repeat * (2 if m.backend in RAW_PRIMITIVES else 1) for m in plan)
    step = 0
    results: list[BackendResult] = []
    for m in plan:
        has_raw = m.backend in RAW_PRIMITIVES
        rates: dict[str, list[float]] = {"raw": [], "channel": []}
        latencies: dict[str, list[tuple[float, float]]] = {"raw": [], "channel": []}
        ratios: list[float] = []
        for r in range(w.repeat):
            order = ["raw", "channel"] if r % 2 == 0 else ["channel", "raw"]
            for side in order if has_raw else ["channel"]:
                step += 1
                say(f"[{step}/{steps}] {m.spec}: round {r + 1} of {w.repeat}, {side}")
                rate, latency = m.raw() if side == "raw" else m.channel()
                rates[side].append(rate)
                latencies[side].append(latency)
            if has_raw:
                ratios.append(rates["channel"][-1] / rates["raw"][-1])
        notes: list[str] = []
        if m.backend == "pipe" and m.shared:
            notes.append("the raw pipe is locked at each end, as several processes share it")
        if m.remote:
            notes.append("the channel uses the server at the spec's address; the raw one is local")
        if not has_raw:
            notes.append("no raw primitive is known for this backend")
        results.append(
            BackendResult(
                backend=m.backend,
                spec=m.spec,
                raw_primitive=RAW_PRIMITIVES.get(m.backend),
                raw=_side(rates["raw"], latencies["raw"], w.size) if has_raw else None,
                channel=_side(rates["channel"], latencies["channel"], w.size),
                ratio=statistics.median(ratios) if ratios else None,
                notes=tuple(notes),
            )
        )
    start_method = multiprocessing.get_context(w.context).get_start_method()
    # The report names the start method that ran, also when the default picked it.
    ran = replace(w, context=start_method)
    return Report(workload=ran, start_method=start_method, results=tuple(results))


# -- presentation --------------------------------------------------------------------


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def format_table(report: Report) -> str:
    """The report as a text table with a short header saying what was measured."""
    w = report.workload
    payload = f"{w.size}-byte bytes" if w.size else "small int"
    lines = [
        f"{w.count:,} {payload} items, {w.producers} producer(s) -> {w.consumers} consumer(s), "
        f"start method {report.start_method}, median of {w.repeat} round(s); "
        f"Python {report.python}, {report.cpus} CPU(s)",
        f"latency: {LATENCY_METHOD}",
        f"ratio: {RATIO_METHOD}",
        "",
    ]
    header = (
        "backend",
        "raw msg/s",
        "chan msg/s",
        "ratio",
        "raw MB/s",
        "chan MB/s",
        "raw p50/p99 us",
        "chan p50/p99 us",
    )
    rows: list[tuple[str, ...]] = [header]
    for res in report.results:
        raw, ch = res.raw, res.channel
        rows.append(
            (
                res.spec,
                _num(raw.msgs_per_s if raw else None),
                _num(ch.msgs_per_s),
                _num(res.ratio, 2),
                _num(raw.mb_per_s if raw else None, 2),
                _num(ch.mb_per_s, 2),
                f"{raw.p50_us:.0f} / {raw.p99_us:.0f}" if raw else "-",
                f"{ch.p50_us:.0f} / {ch.p99_us:.0f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    for res in report.results:
        lines.extend(f"note ({res.spec}): {note}" for note in res.notes)
    return "\n".join(lines)


def _quiet(_: str) -> None:
    """Report no progress."""
