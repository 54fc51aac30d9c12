"""The ``channels`` command: bench, backends, serve, worker, inspect and completion.

This module builds the parser and runs the small commands; ``bench``,
``backends``, ``worker``, ``inspect``, ``serve`` and ``completion`` each have
a module of their own.

Exit codes: 0 on success, 1 when a run fails, 2 for a usage or option error.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Generator, Sequence
from typing import cast

from .._errors import ConfigError
from .._registry import backends
from .arguments import PROG, port, positive, reported, usage_error
from .bench import add_bench_arguments, bench_command
from .completion import bash_script
from .listing import backends_command

__all__ = ["AUTHKEY_ENV", "main"]

#: The environment variable ``channels serve`` reads its authkey from.
AUTHKEY_ENV = "CHANNELS_AUTHKEY"


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
        print(f"{PROG}: interrupted", file=sys.stderr)
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
        prog=PROG,
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
    bench.set_defaults(run=bench_command, command_parser=bench)

    listing = sub.add_parser(
        "backends",
        help="the installed backends and what each supports",
        description="List every registered backend, its features and the options it takes.",
    )
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    listing.set_defaults(run=backends_command, command_parser=listing)

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
        "--port", type=port, default=0, help="port to listen on; 0 picks a free one (default: 0)"
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
        type=positive,
        default=os.cpu_count() or 1,
        metavar="N",
        help="worker processes on this machine (default: the number of CPUs, %(default)s)",
    )
    worker.add_argument(
        "--max-tries",
        type=positive,
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
    worker.add_argument(
        "--batch",
        type=positive,
        default=64,
        metavar="N",
        help=(
            "the most items each of the 2 x --workers receivers takes from the inbox at once "
            "(fewer when items are slow); what a lost machine holds, at most 2 x --workers x N "
            "items, goes back to the inbox (default: %(default)s)"
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
            f'Print a completion script for the shell. Load it with eval "$({PROG} '
            "completion bash)\" in ~/.bashrc, or save it in bash-completion's directory."
        ),
    )
    completion.add_argument("shell", choices=["bash"], help="the shell to complete for")
    completion.set_defaults(run=_completion_command, command_parser=completion)
    return parser


# -- bench ---------------------------------------------------------------------------


# -- backends ------------------------------------------------------------------------


# -- serve ---------------------------------------------------------------------------


def _serve_command(args: argparse.Namespace) -> int:
    # Imported on use: it brings in the manager machinery, which bench and backends never need.
    from .serve import authkey_from_file, serve  # noqa: PLC0415

    with _logging_to_stderr(args.verbose):
        try:
            key = None if args.authkey_file is None else authkey_from_file(args.authkey_file)
            serve((args.host, args.port), key)  # with no file, the key is in CHANNELS_AUTHKEY
        except ConfigError as exc:
            return usage_error("serve", str(exc))
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

    def work() -> int:
        return run_worker(
            args.target,
            args.inbox,
            args.outbox,
            args.workers,
            sys.stderr,
            max_tries=args.max_tries,
            dead_letter_url=args.dead_letter,
            batch=args.batch,
        )

    with _logging_to_stderr(0):
        return reported("worker", work)


def _inspect_command(args: argparse.Namespace) -> int:
    from .inspect import run_inspect  # noqa: PLC0415

    return reported("inspect", lambda: run_inspect(args.url, args.json, sys.stdout))


# -- completion ----------------------------------------------------------------------


def _completion_command(args: argparse.Namespace) -> int:
    del args  # bash is the only shell
    print(bash_script(_parser(), PROG, {"--backend": backends()}), end="")
    return 0


# -- option values -------------------------------------------------------------------
