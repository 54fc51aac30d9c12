"""The one loop behind every face that waits: step, and until the job is done, pause and step.

A *job* is what one call asks of a core in one direction: ``Put`` sends what
is left of a batch until all of it went, ``Take`` takes until some items came.
Its ``step`` is one non-blocking call of the core, and ``done`` reads what the
step returned. The loop decides only when to step and when to pause; how a
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
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

from .._errors import ChannelTimeout
from .contract import Core
from .turns import NOW, may_try_now, take_turn
from .waiting import apause, astep_anyio, in_asyncio, pause, turn

__all__ = ["Job", "Put", "Take", "arun", "run"]

R = TypeVar("R")
X = TypeVar("X")


class Job(Protocol[R]):
    """What one call asks of a core; ``step`` returns an ``R``."""

    @property
    def sending(self) -> bool:
        """Whether the job puts (it waits for room) or takes (it waits for items)."""
        ...

    @property
    def sent(self) -> int:
        """Items of the batch that went so far: what a timeout reports."""
        ...

    def step(self, deadline: float | None) -> R:
        """One non-blocking call of the core; a busy lock may hold it until ``deadline``."""
        ...

    def done(self, result: R) -> bool:
        """Note what a step returned; whether the job is over."""
        ...

    def keep(self, result: R) -> None:
        """A step whose task left returned ``result``: keep what it took for the next call."""
        ...


class Put:
    """A send's job: put what is left of ``data`` until all of it went."""

    __slots__ = ("_core", "_data", "_token", "sent")

    sending = True

    def __init__(self, core: Core, token: int, data: Sequence[Any], sent: int = 0) -> None:
        self._core = core
        self._token = token
        self._data = data
        self.sent = sent

    def step(self, deadline: float | None) -> int:
        sent = self.sent
        try:
            return self._core.put(self._token, self._data[sent:] if sent else self._data, deadline)
        except ChannelTimeout as exc:  # a reply lost: exc.unsure may have gone too
            if not sent:
                raise
            raise ChannelTimeout(str(exc), sent=sent + exc.sent, unsure=exc.unsure) from exc

    def done(self, result: int) -> bool:
        self.sent += result
        return self.sent >= len(self._data)

    def keep(self, result: int) -> None:
        """Nothing to keep: what a put its task left sent is in the channel."""


class Take(Generic[X]):
    """A receive's job: take up to a batch (``take``) until some items come; ``got`` holds them."""

    __slots__ = ("_keep", "_take", "got")

    sending = False
    sent = 0

    def __init__(
        self,
        take: Callable[[float | None], list[X]],
        keep: Callable[[list[X]], object] | None = None,
    ) -> None:
        self._take = take
        self._keep = keep
        self.got: list[X] = []

    def step(self, deadline: float | None) -> list[X]:
        return self._take(deadline)

    def done(self, result: list[X]) -> bool:
        self.got = result
        return bool(result)

    def keep(self, result: list[X]) -> None:
        if result and self._keep is not None:
            self._keep(result)


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
