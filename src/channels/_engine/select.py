"""``select`` and ``aselect``: take the first item ready on any of several receivers.

Receivers of any backends may be mixed. Each round of ``select`` tries every
receiver once, starting one further along than the round before, so no ready
receiver starves; then it waits on every receiver's descriptor at once
(``poll``). Receivers without a descriptor are simply tried again after a
short pause. ``aselect`` waits its turn on each channel, as ``arecv`` does.
"""

from __future__ import annotations

import itertools
import select as _os_select
import time
from typing import Any, TypeVar, cast, overload

from .._errors import ChannelTimeout, ConfigError, EndOfChannel, WouldBlock
from .._protocols import Receiver
from .._timing import POLL_SLICE, SELECT_SLICE, deadline_after
from .channel import ChannelBase
from .conditions import timed_out
from .contract import Core, steps_on_loop
from .receiver import ReceiverHandle
from .turns import take_turn
from .waiting import anyio_module, in_asyncio

__all__ = ["aselect", "select"]

# Invariant: each stands for one receiver's item type, as written by the caller.
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")

_turns = itertools.count()


@overload
def select(a: Receiver[A], /, *, timeout: float | None = None) -> tuple[Receiver[A], A]: ...
@overload
def select(
    a: Receiver[A], b: Receiver[B], /, *, timeout: float | None = None
) -> tuple[Receiver[A] | Receiver[B], A | B]: ...
@overload
def select(
    a: Receiver[A], b: Receiver[B], c: Receiver[C], /, *, timeout: float | None = None
) -> tuple[Receiver[A] | Receiver[B] | Receiver[C], A | B | C]: ...
@overload
def select(
    a: Receiver[A],
    b: Receiver[B],
    c: Receiver[C],
    d: Receiver[D],
    /,
    *,
    timeout: float | None = None,
) -> tuple[Receiver[A] | Receiver[B] | Receiver[C] | Receiver[D], A | B | C | D]: ...
@overload
def select(*receivers: Receiver[A], timeout: float | None = None) -> tuple[Receiver[A], A]: ...
def select(*receivers: Receiver[Any], timeout: float | None = None) -> tuple[Receiver[Any], Any]:
    """Wait until one of ``receivers`` has an item; return that receiver and the item.

    Raises:
        EndOfChannel: every receiver's channel has ended and been drained.
        ChannelTimeout: no item came within ``timeout`` seconds.
        ChannelBroken: a receiver's channel broke (after its items).
    """
    deadline = deadline_after(timeout)
    rounds = _Rounds(receivers)
    while True:
        got = rounds.try_each()
        if got is not None:
            return got
        left = rounds.left(deadline)
        fds, blind = rounds.waitables()
        slice_ = min(left, SELECT_SLICE if blind else POLL_SLICE)
        if fds:
            poller = _os_select.poll()
            for fd in fds:
                poller.register(fd, _os_select.POLLIN)
            if poller.poll(slice_ * 1000):
                continue
        else:
            time.sleep(slice_)
        rounds.look_for_dead()


@overload
async def aselect(a: Receiver[A], /, *, timeout: float | None = None) -> tuple[Receiver[A], A]: ...
@overload
async def aselect(
    a: Receiver[A], b: Receiver[B], /, *, timeout: float | None = None
) -> tuple[Receiver[A] | Receiver[B], A | B]: ...
@overload
async def aselect(
    a: Receiver[A], b: Receiver[B], c: Receiver[C], /, *, timeout: float | None = None
) -> tuple[Receiver[A] | Receiver[B] | Receiver[C], A | B | C]: ...
@overload
async def aselect(
    a: Receiver[A],
    b: Receiver[B],
    c: Receiver[C],
    d: Receiver[D],
    /,
    *,
    timeout: float | None = None,
) -> tuple[Receiver[A] | Receiver[B] | Receiver[C] | Receiver[D], A | B | C | D]: ...
@overload
async def aselect(
    *receivers: Receiver[A], timeout: float | None = None
) -> tuple[Receiver[A], A]: ...
async def aselect(
    *receivers: Receiver[Any], timeout: float | None = None
) -> tuple[Receiver[Any], Any]:
    """``select`` for asyncio: waits without blocking the event loop.

    It waits in line with the other tasks of its loop on each channel (see
    ``turns``). Cancelled, it returned no item and lost none: an item its take
    was still bringing is kept for that receiver's next call.
    """
    deadline = deadline_after(timeout)
    rounds = _Rounds(receivers)
    if not in_asyncio():
        return await _aselect_anyio(rounds, deadline)
    return await _Race(rounds, deadline).run()


async def _aselect_anyio(rounds: _Rounds, deadline: float | None) -> tuple[Receiver[Any], Any]:
    """``aselect`` under another event loop (trio), through anyio: look again after a pause.

    Where a receiver's tries may block, a whole round runs on a worker thread
    (a cancel waits for the round, whose item is still returned).
    """
    anyio = anyio_module()
    on_loop = all(core is not None and steps_on_loop(core) for core in rounds.cores)
    while True:
        if on_loop:
            got = rounds.try_each()
        else:
            got = await anyio.to_thread.run_sync(rounds.try_each)
        if got is not None:
            return got
        left = rounds.left(deadline)
        await anyio.sleep(min(left, SELECT_SLICE))
        rounds.look_for_dead()


class _Race:
    """One ``aselect``: a task per channel waits its turn there; the first item wins.

    Receivers of one core share a task. Only one take runs at a time, so once an
    item is found no other is taken.
    """

    __slots__ = ("_deadline", "_ended", "_groups", "_lock", "_rounds", "_won")

    def __init__(self, rounds: _Rounds, deadline: float | None) -> None:
        import asyncio  # noqa: PLC0415 (loaded only where a loop runs)

        self._rounds = rounds
        self._deadline = deadline
        self._lock = asyncio.Lock()
        self._won = False
        groups: dict[int, list[int]] = {}
        cores: dict[int, Core | None] = {}
        for i in rounds.order():
            core = rounds.cores[i] if rounds.handles[i] is not None else None
            key = id(core) if core is not None else -1 - i
            groups.setdefault(key, []).append(i)
            cores[key] = core
        self._groups = [(cores[key], indexes) for key, indexes in groups.items()]

    async def run(self) -> tuple[Receiver[Any], Any]:
        import asyncio  # noqa: PLC0415 (loaded only where a loop runs)

        if len(self._groups) == 1:
            got = await self._watch(*self._groups[0])
            if got is None:
                raise EndOfChannel("every channel given to select has ended")
            return got
        every = [asyncio.ensure_future(self._watch(core, idx)) for core, idx in self._groups]
        tasks = set(every)
        try:
            while tasks:
                done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    got = task.result()  # raises what the task raised
                    if got is not None:
                        return got
            raise EndOfChannel("every channel given to select has ended")
        finally:
            for task in tasks:
                task.cancel()
            # Each task's outcome is read, so none is reported as never retrieved.
            await asyncio.gather(*every, return_exceptions=True)

    async def _watch(
        self, core: Core | None, indexes: list[int]
    ) -> tuple[Receiver[Any], Any] | None:
        """Take the first item of these receivers (one core's); None once each has ended."""
        if core is None:  # not one of this library's receivers: try it now and then
            return await self._poll(indexes[0])
        rounds, deadline = self._rounds, self._deadline
        turn = await take_turn(core, False, deadline)
        try:
            while True:
                for i in indexes:
                    if i in rounds.ended:
                        continue
                    rx = rounds.handles[i]
                    assert rx is not None
                    async with self._lock:
                        if self._won:
                            return None
                        # A slice at most, so a lock held by a stopped process (or a stalled
                        # server) on one channel does not keep the others from being tried.
                        brief = time.monotonic() + POLL_SLICE
                        if deadline is not None:
                            brief = min(brief, deadline)
                        try:
                            got = await rx._atry(turn, 1, brief)  # pyright: ignore[reportPrivateUsage]
                        except EndOfChannel:
                            rounds.ended.add(i)
                            continue
                        except ChannelTimeout:
                            rounds.left(deadline)  # raises once the whole deadline passed
                            continue
                        if got:
                            self._won = True
                            return rounds.receivers[i], got[0]
                if all(i in rounds.ended for i in indexes):
                    return None
                await turn.pause(deadline)
        finally:
            turn.leave()

    async def _poll(self, i: int) -> tuple[Receiver[Any], Any] | None:
        import asyncio  # noqa: PLC0415 (loaded only where a loop runs)

        rounds = self._rounds
        rx = rounds.receivers[i]
        while True:
            async with self._lock:
                if self._won:
                    return None
                try:
                    item = rx.recv_nowait()
                except WouldBlock:
                    pass
                except EndOfChannel:
                    rounds.ended.add(i)
                    return None
                else:
                    self._won = True
                    return rx, item
            await asyncio.sleep(min(rounds.left(self._deadline), SELECT_SLICE))


class _Rounds:
    """The receivers of one ``select`` call and which of them have ended."""

    __slots__ = ("_start", "cores", "ended", "handles", "receivers")

    def __init__(self, receivers: tuple[Receiver[Any], ...]) -> None:
        if not receivers:
            raise ConfigError("select needs at least one receiver")
        for rx in receivers:
            if not isinstance(rx, Receiver):
                raise ConfigError(f"select takes receivers, not {type(rx).__name__}")
        self.receivers = receivers
        self.handles = [_handle_of(rx) for rx in receivers]
        self.cores = [_core_of(rx, h) for rx, h in zip(receivers, self.handles, strict=True)]
        self.ended: set[int] = set()
        self._start = next(_turns)

    def order(self) -> list[int]:
        """Every receiver's index, starting one further on each call (so none starves)."""
        self._start += 1
        count = len(self.receivers)
        return [(self._start + k) % count for k in range(count)]

    def try_each(self) -> tuple[Receiver[Any], Any] | None:
        """Take an item from the first receiver that has one, starting one further on each call."""
        for i in self.order():
            if i in self.ended:
                continue
            rx = self.receivers[i]
            try:
                return rx, rx.recv_nowait()
            except WouldBlock:
                pass
            except EndOfChannel:
                self.ended.add(i)
        if len(self.ended) == len(self.receivers):
            raise EndOfChannel("every channel given to select has ended")
        return None

    def left(self, deadline: float | None) -> float:
        if deadline is None:
            return POLL_SLICE
        left = deadline - time.monotonic()
        if left <= 0:
            raise timed_out(False)
        return left

    def waitables(self) -> tuple[list[int], bool]:
        """The descriptors of the open receivers, and whether some receiver has none."""
        fds: list[int] = []
        blind = False
        for i, core in enumerate(self.cores):
            if i in self.ended:
                continue
            fd = None if core is None else core.ready_fd(False)
            if fd is None:
                blind = True
            else:
                fds.append(fd)
        return fds, blind

    def look_for_dead(self) -> None:
        """After an idle round: let each core notice dead peers (it takes no time)."""
        for i, core in enumerate(self.cores):
            if core is not None and i not in self.ended and core.ready_fd(False) is not None:
                core.wait(False, 0)


def _handle_of(rx: Receiver[Any]) -> ReceiverHandle[Any] | None:
    """This library's receiver handle behind ``rx``; None for anything else."""
    if isinstance(rx, ChannelBase):
        rx = rx.receiver
    return rx if isinstance(rx, ReceiverHandle) else None


def _core_of(rx: Receiver[Any], handle: ReceiverHandle[Any] | None) -> Core | None:
    """The core behind ``rx``, for its descriptor: a backend with handles of its own
    (``thread``) keeps one too; None for receivers from elsewhere."""
    if handle is not None:
        return handle._core  # pyright: ignore[reportPrivateUsage]
    if isinstance(rx, ChannelBase):
        rx = rx.receiver
    core = getattr(rx, "_core", None)
    return cast(Core, core) if hasattr(core, "ready_fd") else None
