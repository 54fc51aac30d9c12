"""The pause between two tries: for blocking calls, and under trio.

A core never waits for room or items (``contract.Core``). When a try finds
nothing, the loop (``driving``) pauses here for one slice and tries again: the blocking
face sleeps in the core's ``wait``, and the threads of a process take turns to
do so (``turn``), so an item wakes one thread, not every thread. Under asyncio
the tasks take turns as well and never block the loop (``turns``); under
trio the same faces wait through anyio (the ``trio`` extra), with each step
that may block on a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar

from .._errors import ChannelTimeout, ConfigError
from .._timing import POLL_SLICE, WAIT_SLICE
from .conditions import timed_out
from .contract import Core, steps_on_loop

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "anyio_module",
    "apause",
    "astep_anyio",
    "in_asyncio",
    "in_line",
    "pause",
    "readable",
    "turn",
]

R = TypeVar("R")


def _left(sending: bool, deadline: float | None, sent: int) -> float:
    if deadline is None:
        return WAIT_SLICE
    left = deadline - time.monotonic()
    if left <= 0:
        raise timed_out(sending, sent)
    return min(left, WAIT_SLICE)


# One lock per core and direction in this process: the turn to wait on it (see ``turn``).
_lines: weakref.WeakKeyDictionary[Core, tuple[threading.Lock, threading.Lock]] = (
    weakref.WeakKeyDictionary()
)
_lines_lock = threading.Lock()


@contextlib.contextmanager
def turn(
    core: Core,
    sending: bool,
    deadline: float | None,
    sent: int = 0,
    check: Callable[[], None] | None = None,
) -> Generator[None]:
    """This thread's turn to wait on ``core`` in one direction: one thread of a process at a time.

    The others wait here, not on the channel, so an item or a slot that turns up
    wakes one thread instead of every thread (a pool of threads on one receiver),
    and none of them makes a round trip to find nothing. A core whose steps cost
    no round trip (``steps_on_loop``: the local backends) needs no turns: every
    thread waits on it, as a lock handed from thread to thread would cost more
    than a try. ``ChannelTimeout`` once the deadline passes; ``check`` runs every slice.
    """
    if steps_on_loop(core):
        yield
        return
    lines = _lines.get(core)
    if lines is None:
        with _lines_lock:
            lines = _lines.setdefault(core, (threading.Lock(), threading.Lock()))
    lock = lines[sending]
    while not lock.acquire(timeout=_left(sending, deadline, sent)):
        if check is not None:
            check()
    try:
        yield
    finally:
        lock.release()


def in_line(core: Core, sending: bool) -> bool:
    """Whether a thread of this process has the turn to wait on ``core`` (nothing was ready)."""
    lines = _lines.get(core)
    return lines is not None and lines[sending].locked()


def _forget_lines() -> None:
    """In a forked child: a lock another thread held at the fork would stay held for good."""
    global _lines, _lines_lock
    _lines = weakref.WeakKeyDictionary()
    _lines_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_lines)


def pause(core: Core, sending: bool, deadline: float | None, sent: int = 0) -> None:
    """Wait one slice for a retry to be worth it; ``ChannelTimeout`` once the deadline passed."""
    core.wait(sending, _left(sending, deadline, sent))


async def apause(core: Core, sending: bool, deadline: float | None, sent: int = 0) -> None:
    """``pause`` under trio, through anyio: the event loop goes on meanwhile."""
    left = _left(sending, deadline, sent)
    anyio = anyio_module()
    fd = core.ready_fd(sending)
    if fd is None:
        await anyio.to_thread.run_sync(core.wait, sending, left, abandon_on_cancel=True)
        return
    with anyio.move_on_after(min(left, POLL_SLICE)):
        try:
            await anyio.wait_readable(fd)
        except anyio.BusyResourceError:  # another task of this loop waits on it already
            await anyio.sleep(min(left, POLL_SLICE))
    if steps_on_loop(core):
        core.wait(sending, 0)  # takes no time: clears the wake-up, looks for dead peers
    else:
        await anyio.to_thread.run_sync(core.wait, sending, 0)


async def astep_anyio(core: Core, call: Callable[[float | None], R], deadline: float | None) -> R:
    """``call(deadline)`` under trio: on the loop where it cannot block, else on a worker thread.

    A cancel waits for the step to end, and what it took is still returned (the
    cancel strikes at the next checkpoint), so nothing is lost.
    """
    if steps_on_loop(core):
        try:
            return call(0.0)  # a deadline that has passed: try once, take no busy lock
        except ChannelTimeout:
            pass
    result: R = await anyio_module().to_thread.run_sync(call, deadline)
    return result


def in_asyncio() -> bool:
    """Whether an asyncio event loop runs in this thread (none can if asyncio was never loaded)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def anyio_module() -> Any:
    try:
        import anyio  # noqa: PLC0415 (optional: only outside asyncio)
    except ImportError:
        raise ConfigError(
            "awaiting a channel outside asyncio (under trio) needs anyio: "
            "pip install 'typed-channels[trio]'"
        ) from None
    return anyio


# One reader callback per descriptor and loop, shared by every task that waits on it.
_waiters: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[int, list[asyncio.Future[None]]]
] = weakref.WeakKeyDictionary()


async def readable(fd: int, timeout: float) -> bool:
    """Wait until ``fd`` is readable, at most ``timeout`` seconds; whether it became so."""
    import asyncio  # noqa: PLC0415 (loaded already: its loop is running)

    loop = asyncio.get_running_loop()
    by_fd = _waiters.setdefault(loop, {})
    futures = by_fd.get(fd)
    if futures is None:
        futures = by_fd[fd] = []
        loop.add_reader(fd, _wake, loop, fd)
    future: asyncio.Future[None] = loop.create_future()
    futures.append(future)
    try:
        await asyncio.wait_for(asyncio.shield(future), timeout)
    except TimeoutError:
        return False
    finally:
        with contextlib.suppress(ValueError):
            futures.remove(future)
        if not futures and by_fd.get(fd) is futures:
            del by_fd[fd]
            loop.remove_reader(fd)
    return True


def _wake(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    futures = _waiters.get(loop, {}).pop(fd, [])
    loop.remove_reader(fd)
    for future in futures:
        if not future.done():
            future.set_result(None)
