"""The one loop behind every face that waits: step, and until the job is done, pause and step.

A *job* (``jobs``) is what one call asks of a core in one direction: ``Put``
sends what is left of a batch until all of it went, ``Take`` takes until some
items came. The loop decides only when to step and when to pause; how a
step runs and how a pause waits belongs to where the caller waits:

- ``run``, in the calling thread, in its turn among the process's threads
  (``waiting.turn``), pausing in the core's ``wait``;
- ``arun`` under asyncio, in the task's turn among the loop's tasks
  (``turns.Turn``): a step runs on the loop where it cannot block and on a
  helper thread where it can; a core whose every step is a round trip runs the
  whole job on one helper thread, which stops when its task leaves;
- ``arun`` under trio, through anyio (``waiting.apause``, ``astep_anyio``).

The loop is written once for threads (``_steps``) and once for tasks
(``_asteps``): the two differ only in ``await``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol, TypeVar

from .._errors import ChannelTimeout
from .contract import Core
from .jobs import Job
from .turns import NOW, may_try_now, take_turn
from .waiting import apause, astep_anyio, in_asyncio, pause, turn

__all__ = ["arun", "run"]

R = TypeVar("R")


def run(
    core: Core,
    job: Job[Any],
    deadline: float | None,
    tried: bool = False,
    check: Callable[[], None] | None = None,
) -> None:
    """Run ``job`` to its end in this thread, in its turn (``check`` runs while it waits for it).

    ``tried``: the caller's own step just now did not end the job, so pause first.
    """
    with turn(core, job.sending, deadline, job.sent, check):
        if tried:
            pause(core, job.sending, deadline, job.sent)
        _steps(core, job, deadline)


def _steps(
    core: Core, job: Job[R], deadline: float | None, stop: threading.Event | None = None
) -> R:
    """The loop, in a thread; with ``stop`` (on a helper thread) it ends, undone, once set."""
    while True:
        result = job.step(deadline)
        if job.done(result) or (stop is not None and stop.is_set()):
            return result
        pause(core, job.sending, deadline, job.sent)
        if stop is not None and stop.is_set():  # its task left: do nothing more for it
            return result


class _Face(Protocol):
    async def step(self, job: Job[R], deadline: float | None) -> R: ...

    async def pause(self, deadline: float | None, sent: int = 0) -> None: ...


async def _asteps(face: _Face, job: Job[Any], deadline: float | None) -> None:
    """The loop, in a task."""
    while not job.done(await face.step(job, deadline)):
        await face.pause(deadline, job.sent)


async def arun(core: Core, job: Job[Any], deadline: float | None) -> None:
    """Run ``job`` to its end in this task, never blocking its event loop.

    Cancelled, or out of time, while a step runs off the loop: the step goes on,
    and what it takes is kept (``Job.keep``), so nothing is lost.
    """
    if not in_asyncio():
        await _asteps(_Anyio(core, job.sending), job, deadline)
        return
    if may_try_now(core, job.sending):
        with contextlib.suppress(ChannelTimeout):  # a busy lock: wait for it in turn
            if job.done(job.step(NOW)):
                return
    in_turn = await take_turn(core, job.sending, deadline, job.sent)
    try:
        if in_turn.quick:
            await _asteps(in_turn, job, deadline)
            return
        # Every step a round trip: the whole job on one helper thread.
        whole = partial(_steps, core, job, deadline)
        try:
            await in_turn.off_loop(whole, deadline, job.keep, job.sent)
        except ChannelTimeout as exc:  # out of time while the job was still out
            exc.sent = max(exc.sent, job.sent)
            raise
    finally:
        in_turn.leave()


class _Anyio:
    """Steps and pauses under trio, through anyio."""

    __slots__ = ("_core", "_sending")

    def __init__(self, core: Core, sending: bool) -> None:
        self._core = core
        self._sending = sending

    async def step(self, job: Job[R], deadline: float | None) -> R:
        return await astep_anyio(self._core, job.step, deadline)

    async def pause(self, deadline: float | None, sent: int = 0) -> None:
        await apause(self._core, self._sending, deadline, sent)
