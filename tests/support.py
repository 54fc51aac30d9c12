"""Helpers the tests share (importable, unlike conftest)."""

from __future__ import annotations

import importlib.util
import multiprocessing
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any, cast

import channels

METHODS = ["fork", "spawn", "forkserver"]
LOCAL_BACKENDS = ["pipe", "queue", "simplequeue"]
HAVE_MANAGER = importlib.util.find_spec("channels._backends.manager") is not None
BACKENDS = LOCAL_BACKENDS + (["manager"] if HAVE_MANAGER else [])
BOUNDED_BACKENDS = [b for b in BACKENDS if b in ("queue", "manager")]

#: Generous bound for anything a test waits on: a hang fails the test, it never blocks the run.
WAIT = 20.0


def open_for(backend: str, method: str | None = None, **options: object) -> channels.Channel[Any]:
    """Open a channel of ``backend`` whose processes use start method ``method``."""
    if method is not None:
        options["context"] = method
    return channels.open_channel[Any](backend, **cast("channels.ChannelOptions", options))


def start(method: str, target: Callable[..., object], *args: object) -> BaseProcess:
    """Start ``target(*args)`` in a child process of start method ``method``."""
    ctx = multiprocessing.get_context(method)
    make = cast("Callable[..., BaseProcess]", ctx.Process)  # type: ignore[attr-defined]
    process = make(target=target, args=args)
    process.start()
    return process


def join(*processes: BaseProcess) -> list[int | None]:
    """Join each process (each bounded by WAIT) and return the exit codes."""
    for p in processes:
        p.join(WAIT)
    return [p.exitcode for p in processes]


def drain(receiver: channels.Receiver[Any], timeout: float = WAIT) -> tuple[list[Any], str]:
    """Receive until the channel stops; return the items and the name of what stopped it."""
    items: list[Any] = []
    while True:
        try:
            items.append(receiver.recv(timeout=timeout))
        except channels.ChannelError as exc:
            return items, type(exc).__name__
