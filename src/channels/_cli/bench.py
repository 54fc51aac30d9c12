"""``channels bench``: its arguments, the workload they describe, and the run."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from typing import TextIO

from .. import _bench
from .._bench.chart import check_chart, write_chart
from .._errors import ConfigError
from .arguments import PROG, positive, size, usage_error

__all__ = ["add_bench_arguments", "bench_command", "workload_from_args"]


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the workload and backend options of ``channels bench`` to ``parser``."""
    default = _bench.Workload()
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--backend",
        metavar="NAME",
        action="extend",
        nargs="+",
        dest="backends",
        help=f"backend(s) to measure (default: {' '.join(_bench.LOCAL_BACKENDS)}; "
        "manager only when named, as it is slow)",
    )
    which.add_argument(
        "--spec", help="one channel spec to measure instead, e.g. 'queue://?maxsize=1000'"
    )
    parser.add_argument(
        "--size",
        type=size,
        default=default.size,
        metavar="BYTES",
        help="payload bytes per item, with an optional k or M suffix; 0 or 'int' sends small "
        "ints (default: %(default)s)",
    )
    parser.add_argument(
        "--count",
        type=positive,
        default=default.count,
        metavar="N",
        help="items sent in all, split across producers (default: %(default)s)",
    )
    parser.add_argument(
        "--producers",
        type=positive,
        default=default.producers,
        metavar="P",
        help="producer processes (default: %(default)s)",
    )
    parser.add_argument(
        "--consumers",
        type=positive,
        default=default.consumers,
        metavar="C",
        help="consumer processes (default: %(default)s)",
    )
    parser.add_argument(
        "--context",
        choices=multiprocessing.get_all_start_methods(),
        metavar="METHOD",
        help="start method: "
        + ", ".join(multiprocessing.get_all_start_methods())
        + f" (default: {multiprocessing.get_start_method()})",
    )
    parser.add_argument(
        "--repeat",
        type=positive,
        default=default.repeat,
        metavar="R",
        help="rounds, each running the raw primitive and the channel (default: %(default)s)",
    )
    parser.add_argument(
        "--pings",
        type=positive,
        default=default.pings,
        metavar="N",
        help="round trips timed for latency in each run (default: %(default)s)",
    )
    parser.add_argument(
        "--rows",
        choices=_bench.ROWS,
        action="extend",
        nargs="+",
        metavar="ROW",
        help="which rows to measure: base (each backend beside its primitive, with latency), "
        "batch (send_many/recv_many), large (large items), 2x2 (2 producers to 2 consumers) "
        f"(default: all: {' '.join(_bench.ROWS)})",
    )
    parser.add_argument(
        "--batch",
        type=positive,
        default=default.batch,
        metavar="N",
        help="items per call in the batch rows (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-count",
        type=positive,
        default=default.batch_count,
        metavar="N",
        help="items sent in all in each run of the batch rows (default: %(default)s)",
    )
    parser.add_argument(
        "--large-size",
        type=size,
        default=default.large_size,
        metavar="BYTES",
        help="bytes per item in the large rows, with an optional k or M suffix (default: 64M)",
    )
    parser.add_argument(
        "--large-count",
        type=positive,
        default=default.large_count,
        metavar="N",
        help="items sent in each run of the large rows (default: %(default)s)",
    )


def workload_from_args(args: argparse.Namespace) -> _bench.Workload:
    """The workload the options in ``args`` describe (see ``add_bench_arguments``)."""
    return _bench.Workload(
        count=args.count,
        size=args.size,
        producers=args.producers,
        consumers=args.consumers,
        context=args.context,
        repeat=args.repeat,
        pings=args.pings,
        batch=args.batch,
        batch_count=args.batch_count,
        large_size=args.large_size,
        large_count=args.large_count,
    )


def bench_command(args: argparse.Namespace) -> int:
    if args.chart is not None:
        try:  # before measuring, so a missing matplotlib costs no wasted run
            check_chart(args.chart)
        except ConfigError as exc:
            return usage_error("bench", str(exc))
    progress = Progress(sys.stderr)
    try:
        report = _bench.run(
            args.backends,
            spec=args.spec,
            workload=workload_from_args(args),
            rows=args.rows or _bench.ROWS,
            progress=progress,
        )
    except ConfigError as exc:
        progress.done()
        return usage_error("bench", str(exc))
    except _bench.BenchError as exc:
        progress.done()
        print(f"{PROG} bench: failed: {exc}", file=sys.stderr)
        return 1
    finally:
        progress.done()
    if args.json == "-":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(_bench.format_table(report))
    try:
        if args.json not in (None, "-"):
            with open(args.json, "w", encoding="utf-8") as out:
                json.dump(report.to_dict(), out, indent=2)
        if args.chart is not None:
            write_chart(report, args.chart)
    except OSError as exc:
        print(f"{PROG} bench: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


class Progress:
    """One progress line on ``stream``: rewritten in place on a terminal, else a line a step."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._shown = False

    def __call__(self, message: str) -> None:
        if self._tty:
            self._stream.write(f"\r\x1b[K{PROG} bench: {message}")
        else:
            self._stream.write(f"{PROG} bench: {message}\n")
        self._stream.flush()
        self._shown = True

    def done(self) -> None:
        """Clear the line, so that what follows starts clean."""
        if self._shown and self._tty:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
        self._shown = False
