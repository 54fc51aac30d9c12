"""``select`` and ``aselect``: take the first item ready on any of several receivers.

Receivers of any backends may be mixed. Each round tries every receiver once,
starting one further along than the round before, so no ready receiver
starves; then it waits on every receiver's descriptor at once (``poll``, or
``add_reader`` under asyncio). Receivers without a descriptor are simply
tried again after a short pause.
"""

from __future__ import annotations

import itertools
import select as _os_select
import time
from typing import Any, TypeVar, overload

from ._core import POLL_SLICE, Core, deadline_after
from ._errors import ConfigError, EndOfChannel, WouldBlock
from ._handles import ChannelBase, ReceiverHandle
from ._policy import timed_out
from ._protocols import Receiver
from ._waiting import anyio_module, in_asyncio, readable

__all__ = ["aselect", "select"]

# Invariant: each stands for one receiver's item type, as written by the caller.
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")

#: How long a round waits when some receiver has no descriptor to wait on.
_SHORT = 0.01
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
        slice_ = min(left, _SHORT if blind else POLL_SLICE)
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

    Cancelled, it took no item.
    """
    deadline = deadline_after(timeout)
    rounds = _Rounds(receivers)
    while True:
        got = rounds.try_each()
        if got is not None:
            return got
        left = rounds.left(deadline)
        fds, blind = rounds.waitables()
        slice_ = min(left, _SHORT if blind else POLL_SLICE)
        if not in_asyncio():  # trio, through anyio: look again after a short pause
            await anyio_module().sleep(min(left, _SHORT))
            rounds.look_for_dead()
            continue
        import asyncio  # noqa: PLC0415 (loaded already: its loop is running)

        if fds:
            waits = [asyncio.ensure_future(readable(fd, slice_)) for fd in fds]
            try:
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
            if any(w.result() for w in done if not w.cancelled()):
                continue
        else:
            await asyncio.sleep(slice_)
        rounds.look_for_dead()


class _Rounds:
    """The receivers of one ``select`` call and which of them have ended."""

    __slots__ = ("_cores", "_ended", "_receivers", "_start")

    def __init__(self, receivers: tuple[Receiver[Any], ...]) -> None:
        if not receivers:
            raise ConfigError("select needs at least one receiver")
        for rx in receivers:
            if not isinstance(rx, Receiver):
                raise ConfigError(f"select takes receivers, not {type(rx).__name__}")
        self._receivers = receivers
        self._cores = [_core_of(rx) for rx in receivers]
        self._ended: set[int] = set()
        self._start = next(_turns)

    def try_each(self) -> tuple[Receiver[Any], Any] | None:
        """Take an item from the first receiver that has one, starting one further on each call."""
        count = len(self._receivers)
        self._start += 1
        for k in range(count):
            i = (self._start + k) % count
            if i in self._ended:
                continue
            rx = self._receivers[i]
            try:
                return rx, rx.recv_nowait()
            except WouldBlock:
                pass
            except EndOfChannel:
                self._ended.add(i)
        if len(self._ended) == count:
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
        for i, core in enumerate(self._cores):
            if i in self._ended:
                continue
            fd = None if core is None else core.ready_fd(False)
            if fd is None:
                blind = True
            else:
                fds.append(fd)
        return fds, blind

    def look_for_dead(self) -> None:
        """After an idle round: let each core notice dead peers (it takes no time)."""
        for i, core in enumerate(self._cores):
            if core is not None and i not in self._ended and core.ready_fd(False) is not None:
                core.wait(False, 0)


def _core_of(rx: Receiver[Any]) -> Core | None:
    """The core behind one of this library's receivers; None for anything else."""
    if isinstance(rx, ChannelBase):
        rx = rx.receiver
    if isinstance(rx, ReceiverHandle):
        return rx._core  # pyright: ignore[reportPrivateUsage]
    return None
