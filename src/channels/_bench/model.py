"""What a bench run is asked to do and what it reports: plain frozen dataclasses."""

from __future__ import annotations

import multiprocessing
import os
import platform
from dataclasses import asdict, dataclass, field

from .._errors import ConfigError

__all__ = [
    "LATENCY_METHOD",
    "LOCAL_BACKENDS",
    "RATIO_METHOD",
    "ROWS",
    "ROW_METHOD",
    "BackendResult",
    "BenchError",
    "Rate",
    "Report",
    "RowResult",
    "Side",
    "Workload",
]

#: The backends measured when none is named (``manager`` is slow, so only on request).
LOCAL_BACKENDS = ("thread", "pipe", "queue", "simplequeue")

#: The groups of rows a run can measure: ``base`` is the per-backend table beside the raw
#: primitive (with latency); the others are the extra rows (see ``ROW_METHOD``).
ROWS = ("base", "batch", "large", "2x2")

LATENCY_METHOD = (
    "ping-pong round trip between two processes (separate run: one item out on one "
    "primitive or channel, echoed back on a second), p50/p99 in microseconds"
)

RATIO_METHOD = (
    "median of the per-round channel/raw throughput ratios (each round runs both back to "
    "back), so it need not equal the quotient of the two medians"
)

ROW_METHOD = (
    "batch: `batch_count` items by send_many/recv_many of `batch` items per call, beside "
    "the primitive carrying one list of `batch` items per put/get and faster_fifo "
    "put_many/get_many; large: "
    "`large_count` items of `large_size` bytes (a numpy array when numpy is installed, else "
    "bytes), the receiver reading one byte of every 4 KiB page; 2x2: 2 producers to 2 "
    "consumers, one item per call. Each round runs every contender of a group once, the "
    "order reversed from one round to the next; faster_fifo runs once per round and group "
    "and every row of the group is compared with it"
)


class BenchError(RuntimeError):
    """A measurement could not be completed (a process died or an item went missing)."""


def _whole(name: str, value: object, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{name} must be a whole number >= {least}, not {value!r}")


@dataclass(frozen=True)
class Workload:
    """What each run does.

    Attributes:
        count: items sent in all, split evenly across the producers (the base and
            2x2 rows).
        size: bytes in each item's payload; 0 sends small ints instead.
        producers: producer processes of the base rows.
        consumers: consumer processes of the base rows.
        context: the start method; None means the platform default.
        repeat: rounds; each runs every contender once.
        pings: latency round trips per run (after a short warm-up).
        batch: items per ``send_many``/``recv_many`` call in the batch rows.
        batch_count: items sent in all in each run of the batch rows (more than
            ``count``, as batches go faster).
        large_size: bytes in each item of the large-item rows.
        large_count: items sent in each large-item run.
    """

    count: int = 20_000
    size: int = 64
    producers: int = 1
    consumers: int = 1
    context: str | None = None
    repeat: int = 3
    pings: int = 2_000
    batch: int = 100
    batch_count: int = 100_000
    large_size: int = 64 << 20
    large_count: int = 2

    def __post_init__(self) -> None:
        for name in ("count", "producers", "consumers", "repeat", "pings", "batch", "batch_count"):
            _whole(name, getattr(self, name), 1)
        _whole("large_count", self.large_count, 1)
        _whole("large_size", self.large_size, 1)
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
class Rate:
    """One contender's throughput in an extra row, as the median over rounds.

    Attributes:
        what: what ran, e.g. ``"multiprocessing.Queue put/get"``.
        msgs_per_s: items per second (an item of a batch counts as one).
        mb_per_s: payload megabytes (10**6 bytes) per second; None for int payloads.
        rounds_msgs_per_s: the throughput of each round, in the order run.
    """

    what: str
    msgs_per_s: float
    mb_per_s: float | None
    rounds_msgs_per_s: tuple[float, ...]


@dataclass(frozen=True)
class RowResult:
    """An extra row: the channel beside the stdlib primitive and, if installed, faster_fifo.

    Attributes:
        row: the group, one of ``ROWS`` but ``base``.
        backend: the backend name.
        spec: the spec the channel was opened with.
        shape: what was sent, e.g. ``"20,000 64-byte bytes items, 100 per call, 1 -> 1"``.
        channel: the channel's figures.
        stdlib: the stdlib primitive's figures, or None for a backend with no known one.
        faster_fifo: ``faster_fifo.Queue``'s figures, or None when it is not installed.
        stdlib_ratio: channel/stdlib throughput, median of the per-round ratios.
        faster_fifo_ratio: channel/faster_fifo throughput, median of the per-round ratios.
        notes: anything that makes the comparison less than like for like.
    """

    row: str
    backend: str
    spec: str
    shape: str
    channel: Rate
    stdlib: Rate | None
    faster_fifo: Rate | None
    stdlib_ratio: float | None
    faster_fifo_ratio: float | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    """A whole bench run: the workload, where it ran, and its results.

    ``results`` holds the base rows (one per backend, with latency), ``rows`` the
    extra ones (batches, large items, 2 producers to 2 consumers).
    """

    workload: Workload
    start_method: str
    results: tuple[BackendResult, ...]
    rows: tuple[RowResult, ...] = ()
    large_item: str | None = None
    python: str = field(default_factory=platform.python_version)
    machine: str = field(default_factory=platform.platform)
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)

    def to_dict(self) -> dict[str, object]:
        """The report as plain data, ready for ``json.dumps``."""
        data = asdict(self)
        data["workload"]["payload"] = self.workload.payload
        data["latency_method"] = LATENCY_METHOD
        data["ratio_method"] = RATIO_METHOD
        data["row_method"] = ROW_METHOD
        return data
