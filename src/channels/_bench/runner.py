"""Plan a bench run, run every measurement in rounds, and gather the report.

Every round runs each contender of a group once, back to back, the order
reversed from one round to the next; the report gives the median over rounds,
since a shared machine is noisy. A throughput run: ``producers`` processes send
``count`` items in all (split evenly) to ``consumers`` processes, timed from a
common start to the last item received. A baseline's consumers stop on a poison
pill (one per consumer, sent once every producer has exited); a channel's stop
at the end of the channel. Latency (base rows only) is a separate ping-pong
run between two processes over two primitives (or two channels).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import statistics
from collections.abc import Callable, Sequence
from dataclasses import replace
from multiprocessing.context import BaseContext

from .._config import parse_spec
from .._errors import ConfigError, EndOfChannel
from .._open import ChannelOptions, open_channel
from .._registry import get_backend
from .measure import (
    LOOP_NOTE,
    Shape,
    Target,
    channel_latency,
    channel_rate,
    fifo_rate,
    fresh,
    make_raw_ends,
    raw_latency,
    raw_rate,
)
from .model import (
    LOCAL_BACKENDS,
    ROWS,
    BackendResult,
    Rate,
    Report,
    RowResult,
    Side,
    Workload,
)
from .optional import faster_fifo, numpy
from .primitives import FASTER_FIFO, RAW_PRIMITIVES
from .threads import THREADS
from .workers import (
    Items,
)

__all__ = ["run"]


def _side(rates: Sequence[float], latencies: Sequence[tuple[float, float]], size: int) -> Side:
    rate = statistics.median(rates)
    return Side(
        msgs_per_s=rate,
        mb_per_s=rate * size / 1e6 if size else None,
        p50_us=statistics.median(p50 for p50, _ in latencies),
        p99_us=statistics.median(p99 for _, p99 in latencies),
        rounds_msgs_per_s=tuple(rates),
    )


def _plan(backends: Sequence[str] | None, spec: str | None, workload: Workload) -> list[Target]:
    """Check every backend and spec before anything runs; ``ConfigError`` names the problem."""
    if spec is not None and backends:
        raise ConfigError("give either backend names or one spec, not both")
    specs = [spec] if spec is not None else list(backends or LOCAL_BACKENDS)
    if not specs:
        raise ConfigError("no backend to measure")
    plan: list[Target] = []
    for text in specs:
        parsed = parse_spec(text)
        backend = get_backend(parsed.backend)
        features = backend.features
        options: ChannelOptions = {}
        if workload.context is not None and "context" in backend.options:
            options["context"] = workload.context
        # Opening one now reports a bad option before any process starts; drained after
        # its end, it leaves nothing behind on a server.
        check = open_channel[object](fresh(text), **options)
        check.close()
        with contextlib.suppress(EndOfChannel):
            check.recv_nowait()
        maxsize = parsed.options.get("maxsize", 0)
        plan.append(
            Target(
                backend=parsed.backend,
                spec=text,
                options=options,
                maxsize=int(str(maxsize) or 0),
                remote="address" in parsed.options,
                many=features.many_producers and features.many_consumers,
            )
        )
    return plan


class _Steps:
    """Numbers the progress lines."""

    def __init__(self, total: int, say: Callable[[str], object]) -> None:
        self.total, self.done, self.say = total, 0, say

    def __call__(self, line: str) -> None:
        self.done += 1
        self.say(f"[{self.done}/{self.total}] {line}")


def _base_steps(plan: Sequence[Target], w: Workload) -> int:
    return sum(w.repeat * (2 if t.has_raw else 1) for t in plan)


def _base(
    main_ctx: BaseContext, plan: Sequence[Target], w: Workload, step: _Steps
) -> list[BackendResult]:
    shape = Shape(Items(w.size), w.count, w.producers, w.consumers)
    results: list[BackendResult] = []
    for t in plan:
        ctx = _context(t, main_ctx)
        rates: dict[str, list[float]] = {"raw": [], "channel": []}
        latencies: dict[str, list[tuple[float, float]]] = {"raw": [], "channel": []}
        ratios: list[float] = []
        for r in range(w.repeat):
            order = ["raw", "channel"] if r % 2 == 0 else ["channel", "raw"]
            for side in order if t.has_raw else ["channel"]:
                step(f"{t.spec}: round {r + 1} of {w.repeat}, {side}")
                if side == "raw":
                    made = make_raw_ends(t, ctx, shape.shared)
                    rates[side].append(raw_rate(ctx, shape, made))
                    latencies[side].append(raw_latency(ctx, t, w))
                else:
                    rates[side].append(channel_rate(ctx, shape, t))
                    latencies[side].append(channel_latency(ctx, t, w))
            if t.has_raw:
                ratios.append(rates["channel"][-1] / rates["raw"][-1])
        notes: list[str] = []
        if t.backend == "pipe" and shape.shared:
            notes.append("the raw pipe is locked at each end, as several processes share it")
        if t.backend == "thread":
            notes.append("producers, consumers and the echo are threads of this process")
        if t.on_redis:
            notes.append(f"the baseline is a hand-written loop on the same server: {LOOP_NOTE}")
        elif t.remote:
            notes.append("the channel uses the server at the spec's address; the raw one is local")
        if not t.has_raw:
            notes.append("no raw primitive is known for this backend")
        results.append(
            BackendResult(
                backend=t.backend,
                spec=t.spec,
                raw_primitive=RAW_PRIMITIVES.get(t.backend),
                raw=_side(rates["raw"], latencies["raw"], w.size) if t.has_raw else None,
                channel=_side(rates["channel"], latencies["channel"], w.size),
                ratio=statistics.median(ratios) if ratios else None,
                notes=tuple(notes),
            )
        )
    return results


# -- the extra rows ------------------------------------------------------------------


def _row_shape(row: str, w: Workload) -> Shape:
    if row == "batch":
        return Shape(Items(w.size, batch=w.batch), w.batch_count, 1, 1)
    if row == "large":
        return Shape(Items(w.large_size, large=True), w.large_count, 1, 1)
    return Shape(Items(w.size), w.count, 2, 2)


def _describe(row: str, shape: Shape, w: Workload, large_item: str) -> str:
    item = large_item if row == "large" else (f"{w.size}-byte bytes" if w.size else "small int")
    per_call = f", {w.batch} per call" if row == "batch" else ""
    return f"{shape.count:,} {item} items{per_call}, {shape.producers} -> {shape.consumers}"


def _row_targets(row: str, plan: Sequence[Target]) -> list[Target]:
    """The targets of an extra row: those between processes (its baselines run in processes)."""
    between = [t for t in plan if t.backend != "thread"]
    return [t for t in between if t.many] if row == "2x2" else between


def _context(target: Target, ctx: BaseContext) -> BaseContext:
    """Where ``target``'s producers and consumers run: threads for a thread channel."""
    return THREADS if target.backend == "thread" else ctx


def _contenders(targets: Sequence[Target], fifo: bool) -> list[tuple[str, Target | None]]:
    """The runs of one round, in order: each stdlib primitive, faster_fifo, each channel."""
    return [
        *(("stdlib", t) for t in targets if t.has_raw),
        *([("faster_fifo", None)] if fifo else []),
        *(("channel", t) for t in targets),
    ]


def _rate(what: str, rates: Sequence[float], shape: Shape) -> Rate:
    rate = statistics.median(rates)
    size = shape.items.size
    return Rate(
        what=what,
        msgs_per_s=rate,
        mb_per_s=rate * size / 1e6 if size else None,
        rounds_msgs_per_s=tuple(rates),
    )


def _ratio(mine: Sequence[float], theirs: Sequence[float]) -> float | None:
    if not mine or len(mine) != len(theirs):
        return None
    return statistics.median(a / b for a, b in zip(mine, theirs, strict=True))


def _rows(
    ctx: BaseContext,
    *,
    rows: Sequence[str],
    plan: Sequence[Target],
    w: Workload,
    step: _Steps,
    fifo: bool,
    large_item: str,
) -> list[RowResult]:
    results: list[RowResult] = []
    for row in rows:
        shape = _row_shape(row, w)
        targets = _row_targets(row, plan)
        if not targets:
            continue
        contenders = _contenders(targets, fifo)
        rates: dict[tuple[str, str], list[float]] = {}
        for r in range(w.repeat):
            order = contenders if r % 2 == 0 else contenders[::-1]
            for kind, t in order:
                name = t.spec if t is not None else "faster_fifo"
                step(f"{row}: round {r + 1} of {w.repeat}, {name} {kind}")
                if kind == "channel" and t is not None:
                    rate = channel_rate(ctx, shape, t)
                elif kind == "stdlib" and t is not None:
                    made = make_raw_ends(t, ctx, shape.shared)
                    rate = raw_rate(ctx, shape, made)
                else:
                    rate = fifo_rate(ctx, shape)
                rates.setdefault((kind, name), []).append(rate)
        fifo_rates = rates.get(("faster_fifo", "faster_fifo"), [])
        for t in targets:
            mine = rates[("channel", t.spec)]
            raw = rates.get(("stdlib", t.spec), [])
            notes: list[str] = []
            if t.backend == "pipe" and shape.shared:
                notes.append("the raw pipe is locked at each end, as several processes share it")
            if row == "batch" and t.on_redis:
                notes.append(f"the baseline pipelines {w.batch} XADDs and reads {w.batch} at once")
            elif row == "batch" and t.has_raw:
                notes.append(
                    f"the list trick: the primitive carries one list of {w.batch} per put/get"
                )
            results.append(
                RowResult(
                    row=row,
                    backend=t.backend,
                    spec=t.spec,
                    shape=_describe(row, shape, w, large_item),
                    channel=_rate(f"{t.spec} channel", mine, shape),
                    stdlib=_rate(RAW_PRIMITIVES[t.backend], raw, shape) if raw else None,
                    faster_fifo=_rate(_fifo_what(row), fifo_rates, shape) if fifo_rates else None,
                    stdlib_ratio=_ratio(mine, raw),
                    faster_fifo_ratio=_ratio(mine, fifo_rates),
                    notes=tuple(notes),
                )
            )
    return results


def _fifo_what(row: str) -> str:
    return "faster_fifo.Queue put_many/get_many" if row == "batch" else FASTER_FIFO


def run(
    backends: Sequence[str] | None = None,
    *,
    spec: str | None = None,
    workload: Workload | None = None,
    rows: Sequence[str] = ROWS,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Measure each backend beside its raw primitive, and the extra rows.

    Args:
        backends: backend names; default ``LOCAL_BACKENDS``.
        spec: one channel spec (a name or URL with options) instead of names.
        workload: what to run; default ``Workload()``.
        rows: which groups of rows to measure, from ``ROWS``; default all.
        progress: called with a short line before each step.

    Returns:
        The report, one result per backend in the order given, then the extra rows.

    Raises:
        ConfigError: a backend, spec, row or workload value is not usable.
        BenchError: a measurement failed (a process died, an item went missing).
    """
    w = workload or Workload()
    unknown = [r for r in rows if r not in ROWS]
    if unknown or not rows:
        raise ConfigError(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    plan = _plan(backends, spec, w)
    ctx = multiprocessing.get_context(w.context)
    fifo = faster_fifo() is not None
    extra = [r for r in ROWS if r in rows and r != "base"]
    total = _base_steps(plan, w) if "base" in rows else 0
    for row in extra:
        total += w.repeat * len(_contenders(_row_targets(row, plan), fifo))
    step = _Steps(total, progress or _quiet)
    large_item = f"{w.large_size:,}-byte " + ("numpy uint8 array" if numpy() else "bytes")
    base = _base(ctx, plan, w, step) if "base" in rows else []
    extras = _rows(ctx, rows=extra, plan=plan, w=w, step=step, fifo=fifo, large_item=large_item)
    start_method = ctx.get_start_method()
    # The report names the start method that ran, also when the default picked it.
    ran = replace(w, context=start_method)
    return Report(
        workload=ran,
        start_method=start_method,
        results=tuple(base),
        rows=tuple(extras),
        large_item=large_item if "large" in rows else None,
    )


def _quiet(_: str) -> None:
    """Report no progress."""
