"""Starting pool worker processes: choosing the context, and keeping Ctrl-C out of them.

Workers ignore SIGINT so that Ctrl-C in a terminal, which reaches the whole
process group, interrupts only the parent; the parent then terminates them.
A child could receive the signal before it gets to ignore it, so processes are
started with SIGINT blocked: the mask is inherited through fork and exec, and
the worker unblocks it only after installing ``SIG_IGN``.

Pools start processes from more than one thread (the dispatcher replaces
workers while the caller starts a stream). A fork copies every open file
descriptor, so a child forked while another thread holds the child ends of a
new worker's pipes would keep them open: that worker's sentinel would never
fire and its pipes never report end of file. ``starting_processes`` makes
the pool's own starts take turns; against forks by other code, the pool also
polls its workers' exit status now and then.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import multiprocessing
import os
import signal
import sys
import threading
import weakref
from collections.abc import Callable, Generator
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Protocol, cast

from .._contexts import resolve_context as shared_rules

__all__ = [
    "UNGUARDED_MAIN",
    "exit_description",
    "ignore_sigint",
    "leave_if_rerunning_main",
    "resolve_context",
    "sigint_blocked",
    "start_process",
    "starting_processes",
    "terminate_at_exit",
    "unguarded_main_hint",
]


class _Terminable(Protocol):
    def terminate(self) -> None: ...


_at_exit: weakref.WeakSet[_Terminable] = weakref.WeakSet()

# multiprocessing registers its own exit hook when this module is first
# imported; ours, registered below, must come later so that it runs first.
importlib.import_module("multiprocessing.util")


def terminate_at_exit(owner: _Terminable) -> None:
    """Terminate ``owner``'s workers when the interpreter exits, if still running then.

    Registered after ``multiprocessing.util`` is imported, so it runs before
    multiprocessing's own exit hook, which would otherwise wait forever for
    our non-daemonic workers.
    """
    _at_exit.add(owner)


@atexit.register
def _terminate_all() -> None:
    for owner in list(_at_exit):
        owner.terminate()


def resolve_context(context: str | BaseContext | None) -> BaseContext:
    """The pool's context: the shared rules, and a forkserver started now if it is one."""
    ctx = shared_rules(context)
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver  # noqa: PLC0415 (other contexts never need it)

        _preload_worker_loop()
        # Start the server now, from the caller's thread: started later from a
        # thread that blocks SIGINT, it would pass that mask on to every
        # process it forks, including other libraries' ones.
        forkserver.ensure_running()
    return ctx


# What a worker runs: a forkserver that imported it once forks workers that need not.
_WORKER_MODULE = "channels._pool.worker_loop"


def _preload_worker_loop() -> None:
    """Add the worker's module to what a forkserver not yet started imports before it forks.

    The modules named before (``multiprocessing.set_forkserver_preload``, by
    default the main module) stay; a server already running is left as it is.
    """
    from multiprocessing import forkserver  # noqa: PLC0415

    server = getattr(forkserver, "_forkserver", None)  # the one every forkserver context shares
    preload = getattr(server, "_preload_modules", None)
    if getattr(server, "_forkserver_pid", 0) is not None or not isinstance(preload, list):
        return
    names = cast("list[str]", preload)
    if _WORKER_MODULE not in names:
        forkserver.set_forkserver_preload([*names, _WORKER_MODULE])


@contextlib.contextmanager
def sigint_blocked() -> Generator[None, None, None]:
    """Block SIGINT in this thread; a signal that arrives meanwhile is delivered on exit."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


_starting = threading.Lock()


def _fresh_starting_lock() -> None:
    # A child forked by a pool (a fork worker) inherits the lock held by the
    # thread that forked it, which does not exist there: a pool inside that
    # worker would wait for it forever.
    global _starting
    _starting = threading.Lock()


os.register_at_fork(after_in_child=_fresh_starting_lock)


@contextlib.contextmanager
def starting_processes() -> Generator[None, None, None]:
    """Hold while creating a child's pipes, starting it and closing the child's ends.

    SIGINT is blocked meanwhile, so Ctrl-C cannot leave a started process
    unrecorded; it is delivered when the block ends.
    """
    with _starting, sigint_blocked():
        yield


def start_process(
    ctx: BaseContext, target: Callable[..., object], args: tuple[object, ...], name: str
) -> BaseProcess:
    """Start a non-daemonic child running ``target(*args)``; call within ``starting_processes``.

    Workers are not daemonic so that the functions they run may start
    processes of their own; the pool terminates them itself.
    """
    factory = cast("Callable[..., BaseProcess]", ctx.Process)  # type: ignore[attr-defined]
    process = factory(target=target, args=args, name=name, daemon=False)
    process.start()
    return process


def ignore_sigint() -> None:
    """In a worker: ignore SIGINT from now on, then unblock it; let SIGTERM end it.

    A worker forked from a parent that catches SIGTERM (``channels worker``
    does) would inherit the handler and outlive the SIGTERM that stops it.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


# The exit code of a new process that found its parent's main module starting a pool.
UNGUARDED_MAIN = 75


def _main_file() -> str:
    main = sys.modules.get("__mp_main__") or sys.modules.get("__main__")
    return str(getattr(main, "__file__", None) or "the main module")


def unguarded_main_hint() -> str:
    """What to do when new processes re-run the code that starts a pool."""
    return (
        f"{_main_file()} starts a pool when it is imported, and the spawn and "
        "forkserver start methods import the main module again in every new "
        "process; put the code that starts the pool under "
        "'if __name__ == \"__main__\":'"
    )


def leave_if_rerunning_main() -> None:
    """In a new process still importing its parent's main module, exit at once.

    The main module starts a pool at import time, unguarded: starting
    processes now would fail (and under spawn, recurse). Exit quietly, with
    one line on stderr, and a code that lets the parent name the mistake.
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        sys.stderr.write(f"channels.Pool: {unguarded_main_hint()}\n")
        sys.stderr.flush()
        # Not SystemExit: a forkserver child turns any exception into exit code 1.
        os._exit(UNGUARDED_MAIN)


def exit_description(exitcode: int | None) -> str:
    """Say how a process ended, from ``Process.exitcode``."""
    if exitcode is None:
        return "died"
    if exitcode == UNGUARDED_MAIN:
        return f"exited at start: {unguarded_main_hint()}"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed by {name}"
    return f"exited with code {exitcode}"
