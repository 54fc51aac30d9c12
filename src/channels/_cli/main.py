"""The ``channels`` command: bench, backends, serve, worker, inspect and completion.

``worker`` and ``inspect`` live in ``worker`` and ``inspect``; this
module only registers them.

Exit codes: 0 on success, 1 when a run fails, 2 for a usage or option error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import os
import sys
import types
import typing
from collections.abc import Callable, Generator, Sequence
from typing import TextIO, Union, cast

from .. import _bench
from .._bench.chart import check_chart, write_chart
from .._errors import ChannelError, ConfigError
from .._registry import backends, get_backend
from .completion import bash_script

__all__ = ["AUTHKEY_ENV", "add_bench_arguments", "main", "workload_from_args"]

#: The environment variable ``channels serve`` reads its authkey from.
AUTHKEY_ENV = "CHANNELS_AUTHKEY"

_PROG = "channels"
_UNITS = {"k": 1 << 10, "m": 1 << 20}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``channels`` command line; return the exit code.

    Args:
        argv: the arguments after the program name; default ``sys.argv[1:]``.
    """
    parser = _parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # told by the command's own parser, so the usage shown is the command's
            command_parser: argparse.ArgumentParser = getattr(args, "command_parser", parser)
            command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exc:  # argparse exits on --help and on bad options
        return exc.code if isinstance(exc.code, int) else 2
    command: Callable[[argparse.Namespace], int] | None = getattr(args, "run", None)
    if command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return command(args)
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted", file=sys.stderr)
        return 130


class _Version(argparse.Action):
    """``--version``, reading the version only when asked: it loads importlib.metadata."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help=cast("str", kwargs.get("help")))

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        from .. import __version__  # noqa: PLC0415

        print(f"{parser.prog} {__version__}")
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Typed channels between processes: measure, list and serve backends.",
    )
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    bench = sub.add_parser(
        "bench",
        help="throughput and latency of each backend beside the raw stdlib primitive",
        description=(
            "Measure each backend beside the multiprocessing primitive it wraps, with the "
            "same workload, alternating the two over several rounds and reporting medians. "
            "Latency is a separate ping-pong run; its figures are round trips."
        ),
    )
    add_bench_arguments(bench)
    bench.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="FILE",
        help="print the report as JSON instead of tables, or write it to FILE beside them",
    )
    bench.add_argument(
        "--chart",
        metavar="FILE",
        help="also draw the report as a chart, FILE.png or FILE.svg (needs the plot extra: "
        "pip install 'typed-channels[plot]')",
    )
    bench.set_defaults(run=_bench_command, command_parser=bench)

    listing = sub.add_parser(
        "backends",
        help="the installed backends and what each supports",
        description="List every registered backend, its features and the options it takes.",
    )
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    listing.set_defaults(run=_backends_command, command_parser=listing)

    serve = sub.add_parser(
        "serve",
        help="host manager-backed channels for other processes or machines",
        description=(
            "Host manager-backed channels that other processes or machines open with "
            "manager://HOST:PORT/NAME and the same authkey, until SIGINT or SIGTERM. The "
            f"authkey (at least 32 bytes) is read from ${AUTHKEY_ENV} or --authkey-file; "
            "it is required. Refused logins are logged at WARNING on stderr."
        ),
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on, IPv4 or IPv6 (default: %(default)s)",
    )
    serve.add_argument(
        "--port", type=_port, default=0, help="port to listen on; 0 picks a free one (default: 0)"
    )
    serve.add_argument(
        "--authkey-file",
        metavar="PATH",
        help=f"read the authkey from this file (one line) instead of ${AUTHKEY_ENV}",
    )
    serve.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log more on stderr: -v connections and channels served, -vv everything",
    )
    serve.set_defaults(run=_serve_command, command_parser=serve)

    worker = sub.add_parser(
        "worker",
        help="this machine's share of a stream: FUNCTION(item) for each item of an inbox",
        description=(
            "Run worker processes that receive from the inbox channel until it ends, send "
            "FUNCTION(item) to the outbox channel, and close their outbox handles when done. "
            "Started on several machines against the same redis:// channels they share the "
            "work, and the outbox ends once the inbox has ended and every worker is done "
            "(start them all before the inbox ends). Progress goes to stderr. SIGINT and "
            "SIGTERM stop it cleanly: on redis, items not finished go back to the channel. "
            "An item whose worker process dies runs again on another, up to --max-tries "
            "times; then it goes to the --dead-letter channel, or the run fails and the "
            "outbox breaks for its readers (as it does if this process dies). "
            "Exit codes: 0 when the inbox ended, 1 when FUNCTION raised (without "
            "--dead-letter) or an item killed too many workers, or a channel broke, "
            "2 for a usage error, 128+N when stopped by signal N."
        ),
    )
    worker.add_argument(
        "target",
        metavar="MODULE:FUNCTION",
        help="the function to run on each item, importable from here (e.g. jobs:handle)",
    )
    worker.add_argument(
        "--inbox", required=True, metavar="URL", help="the channel to take items from"
    )
    worker.add_argument(
        "--outbox", required=True, metavar="URL", help="the channel to send results to"
    )
    worker.add_argument(
        "--workers",
        type=_positive,
        default=os.cpu_count() or 1,
        metavar="N",
        help="worker processes on this machine (default: the number of CPUs, %(default)s)",
    )
    worker.add_argument(
        "--max-tries",
        type=_positive,
        default=3,
        metavar="N",
        help="how many times one item may be started before it is given up (default: 3)",
    )
    worker.add_argument(
        "--dead-letter",
        metavar="URL",
        help=(
            "the channel that gets each item given up, as a channels.DeadLetter with the "
            "item and the cause (an exception of FUNCTION, or the crash); without it, such "
            "an item fails the run"
        ),
    )
    worker.set_defaults(run=_worker_command, command_parser=worker)

    inspect = sub.add_parser(
        "inspect",
        help="the stats of a channel with an address",
        description=(
            "Print the stats() of the channel at URL (redis://HOST:PORT/NAME, or a manager "
            "channel's address): items waiting, sent and taken, open senders, receivers, "
            "whether it ended or broke. Looking neither starts the channel nor joins it."
        ),
    )
    inspect.add_argument("url", metavar="URL", help="the channel, e.g. redis://HOST:PORT/NAME")
    inspect.add_argument("--json", action="store_true", help="print the stats as JSON")
    inspect.set_defaults(run=_inspect_command, command_parser=inspect)

    completion = sub.add_parser(
        "completion",
        help="print a shell script that completes channels' commands and options",
        description=(
            f'Print a completion script for the shell. Load it with eval "$({_PROG} '
            "completion bash)\" in ~/.bashrc, or save it in bash-completion's directory."
        ),
    )
    completion.add_argument("shell", choices=["bash"], help="the shell to complete for")
    completion.set_defaults(run=_completion_command, command_parser=completion)
    return parser


# -- bench ---------------------------------------------------------------------------


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
        type=_size,
        default=default.size,
        metavar="BYTES",
        help="payload bytes per item, with an optional k or M suffix; 0 or 'int' sends small "
        "ints (default: %(default)s)",
    )
    parser.add_argument(
        "--count",
        type=_positive,
        default=default.count,
        metavar="N",
        help="items sent in all, split across producers (default: %(default)s)",
    )
    parser.add_argument(
        "--producers",
        type=_positive,
        default=default.producers,
        metavar="P",
        help="producer processes (default: %(default)s)",
    )
    parser.add_argument(
        "--consumers",
        type=_positive,
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
        type=_positive,
        default=default.repeat,
        metavar="R",
        help="rounds, each running the raw primitive and the channel (default: %(default)s)",
    )
    parser.add_argument(
        "--pings",
        type=_positive,
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
        type=_positive,
        default=default.batch,
        metavar="N",
        help="items per call in the batch rows (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-count",
        type=_positive,
        default=default.batch_count,
        metavar="N",
        help="items sent in all in each run of the batch rows (default: %(default)s)",
    )
    parser.add_argument(
        "--large-size",
        type=_size,
        default=default.large_size,
        metavar="BYTES",
        help="bytes per item in the large rows, with an optional k or M suffix (default: 64M)",
    )
    parser.add_argument(
        "--large-count",
        type=_positive,
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


def _bench_command(args: argparse.Namespace) -> int:
    if args.chart is not None:
        try:  # before measuring, so a missing matplotlib costs no wasted run
            check_chart(args.chart)
        except ConfigError as exc:
            return _usage_error("bench", str(exc))
    progress = _Progress(sys.stderr)
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
        return _usage_error("bench", str(exc))
    except _bench.BenchError as exc:
        progress.done()
        print(f"{_PROG} bench: failed: {exc}", file=sys.stderr)
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
        print(f"{_PROG} bench: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


class _Progress:
    """One progress line on ``stream``: rewritten in place on a terminal, else a line a step."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._shown = False

    def __call__(self, message: str) -> None:
        if self._tty:
            self._stream.write(f"\r\x1b[K{_PROG} bench: {message}")
        else:
            self._stream.write(f"{_PROG} bench: {message}\n")
        self._stream.flush()
        self._shown = True

    def done(self) -> None:
        """Clear the line, so that what follows starts clean."""
        if self._shown and self._tty:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
        self._shown = False


# -- backends ------------------------------------------------------------------------

_FEATURES = (
    ("bounded", "bounded"),
    ("many_producers", "many producers"),
    ("many_consumers", "many consumers"),
    ("cross_machine", "cross-machine"),
)


def _describe_backends() -> list[dict[str, object]]:
    described: list[dict[str, object]] = []
    for name in backends():
        entry: dict[str, object] = {"name": name}
        try:
            backend = get_backend(name)
        except ConfigError as exc:
            entry.update(available=False, error=str(exc))
        else:
            entry.update(
                available=True,
                origin=backend.origin,
                features={attr: getattr(backend.features, attr) for attr, _ in _FEATURES},
                options={opt: _type_name(hint) for opt, hint in backend.options.items()},
            )
        described.append(entry)
    return described


def _backends_command(args: argparse.Namespace) -> int:
    described = _describe_backends()
    if args.json:
        print(json.dumps(described, indent=2))
        return 0
    header = ("backend", "status", *(label for _, label in _FEATURES), "options")
    rows: list[tuple[str, ...]] = [header]
    problems: list[str] = []
    for entry in described:
        name = str(entry["name"])
        features = entry.get("features")
        options = entry.get("options")
        if isinstance(features, dict) and isinstance(options, dict):
            flags = ["yes" if features[attr] else "no" for attr, _ in _FEATURES]
            names = ", ".join(cast("dict[str, object]", options))
            rows.append((name, "ok", *flags, names or "-"))
        else:
            rows.append((name, "unavailable", *("-" for _ in _FEATURES), "-"))
            problems.append(f"{name}: {entry['error']}")
    print(_table(rows))
    for problem in problems:
        print(problem)
    return 0


def _type_name(hint: object) -> str:
    """A readable name for an option's annotated type: ``int``, ``str | None``."""
    if hint is type(None):
        return "None"
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is Union:
        return " | ".join(_type_name(arg) for arg in typing.get_args(hint))
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__qualname__
    return str(hint).replace("typing.", "")


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


# -- serve ---------------------------------------------------------------------------


def _serve_command(args: argparse.Namespace) -> int:
    # Imported on use: it brings in the manager machinery, which bench and backends never need.
    from .serve import authkey_from_file, serve  # noqa: PLC0415

    with _logging_to_stderr(args.verbose):
        try:
            key = None if args.authkey_file is None else authkey_from_file(args.authkey_file)
            serve((args.host, args.port), key)  # with no file, the key is in CHANNELS_AUTHKEY
        except ConfigError as exc:
            return _usage_error("serve", str(exc))
        except KeyboardInterrupt:
            pass
    return 0


@contextlib.contextmanager
def _logging_to_stderr(verbosity: int) -> Generator[None]:
    """Show the library's log records on stderr: WARNING and up, INFO with -v, all with -vv."""
    logger = logging.getLogger("channels")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(max(logging.WARNING - 10 * verbosity, logging.DEBUG))
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# -- worker and inspect --------------------------------------------------------------


def _worker_command(args: argparse.Namespace) -> int:
    # Imported on use: it brings in the pool, which the other commands never need.
    from .worker import run_worker  # noqa: PLC0415

    with _logging_to_stderr(0):
        try:
            return run_worker(
                args.target,
                args.inbox,
                args.outbox,
                args.workers,
                sys.stderr,
                max_tries=args.max_tries,
                dead_letter_url=args.dead_letter,
            )
        except ConfigError as exc:
            return _usage_error("worker", str(exc))
        except ChannelError as exc:
            print(f"{_PROG} worker: failed: {exc}", file=sys.stderr)
            return 1


def _inspect_command(args: argparse.Namespace) -> int:
    from .inspect import run_inspect  # noqa: PLC0415

    try:
        return run_inspect(args.url, args.json, sys.stdout)
    except ConfigError as exc:
        return _usage_error("inspect", str(exc))
    except ChannelError as exc:
        print(f"{_PROG} inspect: failed: {exc}", file=sys.stderr)
        return 1


# -- completion ----------------------------------------------------------------------


def _completion_command(args: argparse.Namespace) -> int:
    del args  # bash is the only shell
    print(bash_script(_parser(), _PROG, {"--backend": backends()}), end="")
    return 0


# -- option values -------------------------------------------------------------------


def _usage_error(command: str, message: str) -> int:
    print(f"{_PROG} {command}: error: {message}", file=sys.stderr)
    return 2


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _size(text: str) -> int:
    """Bytes, with an optional k or M suffix (1024-based); 'int' means 0."""
    cleaned = text.strip().lower()
    if cleaned == "int":
        return 0
    unit = _UNITS.get(cleaned[-1:], 1)
    digits = cleaned[:-1] if unit > 1 else cleaned
    try:
        value = int(digits) * unit
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of bytes (like 64, 4k or 1M) or 'int', not {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, not {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is between 0 and 65535, not {value}")
    return value
