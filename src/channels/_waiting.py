"""Waiting for a channel, written once: for blocking calls, for asyncio, and for ``select``.

A core never waits for room or items (``_core.Core``). When a try finds
nothing, the caller pauses here for one slice and tries again: the blocking
face sleeps in the core's ``wait``; the asyncio face waits for the core's file
descriptor with ``loop.add_reader`` (or, for a backend without one, runs the
core's ``wait`` on a shared helper thread), so the event loop never blocks.
Under trio the same faces wait through anyio (the ``trio`` extra).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from ._core import POLL_SLICE, Core
from ._errors import ConfigError
from ._policy import timed_out

if TYPE_CHECKING:
    # Imported where used: a program that never awaits a channel never loads asyncio.
    import asyncio
    import concurrent.futures

__all__ = ["WAIT_SLICE", "anyio_module", "apause", "in_asyncio", "pause", "readable"]

#: The longest one pause lasts, so a closed receiver or a signal is noticed soon.
WAIT_SLICE = 0.25


def _left(sending: bool, deadline: float | None, sent: int) -> float:
    if deadline is None:
        return WAIT_SLICE
    left = deadline - time.monotonic()
    if left <= 0:
        raise timed_out(sending, sent)
    return min(left, WAIT_SLICE)


def pause(core: Core, sending: bool, deadline: float | None, sent: int = 0) -> None:
    """Wait one slice for a retry to be worth it; ``ChannelTimeout`` once the deadline passed."""
    core.wait(sending, _left(sending, deadline, sent))


async def apause(core: Core, sending: bool, deadline: float | None, sent: int = 0) -> None:
    """``pause`` for asyncio (or, through anyio, trio): the event loop goes on meanwhile."""
    left = _left(sending, deadline, sent)
    fd = core.ready_fd(sending)
    if not in_asyncio():
        await _apause_anyio(core, sending, fd, left)
        return
    if fd is None:
        import asyncio  # noqa: PLC0415 (loaded already: its loop is running)

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(_helper(), core.wait, sending, left)
        return
    await readable(fd, min(left, POLL_SLICE))
    core.wait(sending, 0)  # takes no time: clears the wake-up, looks for dead peers


def in_asyncio() -> bool:
    if "asyncio" not in sys.modules:  # then no asyncio loop can be running
        return False
    import asyncio  # noqa: PLC0415

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def _apause_anyio(core: Core, sending: bool, fd: int | None, left: float) -> None:
    """The same wait under another event loop (trio), through anyio."""
    anyio = anyio_module()
    if fd is None:
        await anyio.to_thread.run_sync(core.wait, sending, left, abandon_on_cancel=True)
        return
    with anyio.move_on_after(min(left, POLL_SLICE)):
        try:
            await anyio.wait_readable(fd)
        except anyio.BusyResourceError:  # another task of this loop waits on it already
            await anyio.sleep(min(left, POLL_SLICE))
    core.wait(sending, 0)


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


_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _helper() -> concurrent.futures.ThreadPoolExecutor:
    """The threads that wait for backends with no descriptor (a server's answer)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            import concurrent.futures  # noqa: PLC0415

            _pool = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="channels-wait")
        return _pool


def _forget_helper() -> None:
    """In a forked child: the parent's threads did not come along, so start afresh."""
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_helper)
