"""Asyncio tasks take turns on a channel, and never block their event loop.

The tasks of one event loop that wait on one channel in one direction form a
*line*: only the task whose turn it is tries the channel and waits for it to
turn ready; the others wait for their turn, first come, first served. So any
number of waiting tasks cost one try per wake-up, and none starves.

A *step* is one call of a core's ``put``, ``take`` or ``wait``. A core whose
steps an event loop may run (``contract.steps_on_loop``: the local backends) is
tried on the loop with a deadline that has already passed, which takes no lock
that is not free; only if a lock is busy does the step go to a helper thread
(``threads``). Every other core's steps run on a helper thread, one at a time
per line. A task that is cancelled, or runs out of time, while its step runs
leaves the step to finish: whatever it took is kept for the receiver's next
call, and the turn passes on only then, so the order holds and a line never
has two steps running.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from .._errors import ChannelTimeout
from .._timing import POLL_SLICE, STEP_GRACE, STEP_ROUND_TRIP, WAIT_SLICE
from .conditions import timed_out
from .contract import Core, steps_on_loop
from .threads import run_off_loop
from .waiting import readable

if TYPE_CHECKING:
    import asyncio

    from .jobs import Job

__all__ = ["NOW", "Turn", "may_try_now", "take_turn"]

R = TypeVar("R")

#: A deadline that has passed: a step given it tries once and never waits.
NOW = 0.0


class _Line:
    """The tasks of one loop waiting on one core in one direction (see the module docstring)."""

    __slots__ = ("busy", "queue")

    def __init__(self) -> None:
        self.busy = False  # a task has the turn
        # Tasks waiting for it, in order; a cancelled one stays until it is skipped.
        self.queue: deque[asyncio.Future[None]] = deque()

    def leave(self) -> None:
        """Pass the turn to the next task still waiting."""
        queue = self.queue
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.busy = False


# Lines by loop, then by core; a core's two lines are for receiving and for sending.
_lines: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, weakref.WeakKeyDictionary[Core, tuple[_Line, _Line]]
] = weakref.WeakKeyDictionary()


def _line(loop: asyncio.AbstractEventLoop, core: Core, sending: bool) -> _Line:
    by_core = _lines.get(loop)
    if by_core is None:
        by_core = _lines[loop] = weakref.WeakKeyDictionary()
    pair = by_core.get(core)
    if pair is None:
        pair = by_core[core] = (_Line(), _Line())
    return pair[sending]


def may_try_now(core: Core, sending: bool) -> bool:
    """Whether a task may try ``core`` on the loop before it takes a turn: its steps
    cannot block, and no task of this loop waits on it (so none is passed over)."""
    import asyncio  # noqa: PLC0415 (loaded only where a loop runs)

    if not steps_on_loop(core):
        return False
    by_core = _lines.get(asyncio.get_running_loop())
    pair = None if by_core is None else by_core.get(core)
    return pair is None or not pair[sending].busy


async def take_turn(core: Core, sending: bool, deadline: float | None, sent: int = 0) -> Turn:
    """Wait for this task's turn on ``core``; the caller must ``leave()`` it.

    ``ChannelTimeout`` if the deadline passes first.
    """
    import asyncio  # noqa: PLC0415 (loaded only where a loop runs)

    loop = asyncio.get_running_loop()
    line = _line(loop, core, sending)
    if not line.busy:
        line.busy = True
        return Turn(core, sending, line)
    waiter: asyncio.Future[None] = loop.create_future()
    line.queue.append(waiter)
    try:
        if deadline is None:
            await waiter
        else:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await waiter
    except BaseException as exc:
        if waiter.done() and not waiter.cancelled():  # the turn came as this task left
            line.leave()
        if isinstance(exc, TimeoutError):
            raise timed_out(sending, sent) from None
        raise
    return Turn(core, sending, line)


class Turn:
    """One task's turn on a line: it runs steps and waits for the core to turn ready."""

    __slots__ = ("_core", "_line", "_pending", "_sending", "quick")

    def __init__(self, core: Core, sending: bool, line: _Line) -> None:
        self._core = core
        self._sending = sending
        self._line = line
        #: Whether the loop may try this core's steps itself (``contract.steps_on_loop``).
        self.quick = steps_on_loop(core)
        self._pending: asyncio.Future[Any] | None = None  # a step this task left running

    async def step(self, job: Job[R], deadline: float | None) -> R:
        """One step of ``job``: on the loop where it cannot block, else on a helper thread.

        If this task leaves before an off-loop step returns, ``job.keep`` gets what it
        returns. Out of time, it raises ``ChannelTimeout`` once the deadline (and, for
        a core that keeps deadlines itself, a little more) has passed.
        """
        if self.quick:
            try:
                return job.step(NOW)
            except ChannelTimeout:
                pass  # a lock is busy: wait for it on a helper thread
        return await self.off_loop(lambda _: job.step(deadline), deadline, job.keep, job.sent)

    async def pause(self, deadline: float | None, sent: int = 0) -> None:
        """Wait one slice for a retry to be worth it; ``ChannelTimeout`` past the deadline."""
        core, sending = self._core, self._sending
        left = WAIT_SLICE
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise timed_out(sending, sent)
            left = min(left, WAIT_SLICE)
        fd = core.ready_fd(sending)
        if fd is None:
            await self.off_loop(lambda _: core.wait(sending, left), deadline, None, sent)
            return
        await readable(fd, min(left, POLL_SLICE))
        if self.quick:
            core.wait(sending, 0)  # takes no time: clears a wake-up, looks for dead peers
        else:
            await self.off_loop(lambda _: core.wait(sending, 0), deadline, None, sent)

    def leave(self) -> None:
        """End this task's turn: now, or once a step it left running returns."""
        pending = self._pending
        if pending is None or pending.done():
            self._line.leave()
        else:
            pending.add_done_callback(lambda _: self._line.leave())

    async def off_loop(
        self,
        call: Callable[[threading.Event], R],
        deadline: float | None,
        keep: Callable[[R], object] | None = None,
        sent: int = 0,
    ) -> R:
        """``call(stop)`` on a helper thread; ``stop`` is set if this task leaves first.

        A call may do several steps (take, wait, take...) and should return soon
        after ``stop`` is set; what it returns then goes to ``keep``.
        """
        import asyncio  # noqa: PLC0415 (loaded only where a loop runs)

        stop = threading.Event()
        outcome = run_off_loop(partial(call, stop))
        timer = None
        try:
            if deadline is None:
                return await asyncio.shield(outcome)
            # A core that keeps deadlines itself gets a moment to say how the step ended;
            # any other gets a round trip's worth, so that a timeout of 0 still tries once.
            grace = STEP_GRACE if self.quick else STEP_ROUND_TRIP
            timer = asyncio.timeout(max(0.0, deadline - time.monotonic()) + grace)
            async with timer:
                return await asyncio.shield(outcome)
        except BaseException:
            stop.set()
            if outcome.done():
                if keep is not None and not outcome.exception():
                    keep(outcome.result())
            else:
                self._pending = outcome
                outcome.add_done_callback(lambda done: _settle(done, keep))
            if timer is not None and timer.expired():  # not the call's own ChannelTimeout
                raise _abandoned(self._sending, sent) from None
            raise


def _settle(outcome: asyncio.Future[Any], keep: Callable[[Any], object] | None) -> None:
    """A step its task left has returned: keep what it took (its error is nobody's now)."""
    if outcome.exception() is None and keep is not None:
        keep(outcome.result())


def _abandoned(sending: bool, sent: int) -> ChannelTimeout:
    if sending:
        return ChannelTimeout(
            "the channel did not answer before the timeout; the item may still arrive", sent=sent
        )
    return ChannelTimeout("the channel did not answer before the timeout")
