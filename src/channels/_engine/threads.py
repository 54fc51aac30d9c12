"""Helper threads that run blocking calls for event loops, as many as run at once.

A pool of a fixed size makes the next call wait behind the ones that block (a
stalled server holds them all); here a call that finds no idle thread starts
one, and a thread idle for ``HELPER_IDLE_EXIT`` seconds ends. The turns of
``turns`` keep the number in use small: one call at a time per channel,
direction and event loop. The threads are daemons, so a call stuck on a
stalled server never keeps the interpreter from exiting.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._timing import HELPER_IDLE_EXIT

if TYPE_CHECKING:
    import asyncio

__all__ = ["run_off_loop"]


_Job = tuple["asyncio.AbstractEventLoop", "asyncio.Future[Any]", Callable[[], object]]


class _Helpers:
    """Threads that take jobs from one queue; one more is started when none is idle."""

    __slots__ = ("_jobs", "_lock", "_ready", "_spare")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._jobs: deque[_Job] = deque()
        self._spare = 0  # idle threads no queued job has claimed yet

    def submit(self, job: _Job) -> None:
        with self._lock:
            self._jobs.append(job)
            if self._spare:
                self._spare -= 1
                self._ready.notify()
                return
        threading.Thread(target=self._work, name="channels-step", daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._jobs:
                    if not self._ready.wait(HELPER_IDLE_EXIT) and not self._jobs:
                        self._spare -= 1
                        return
                job = self._jobs.popleft()
            _run(*job)
            del job  # hold nothing of it while idle: a core must be collectable
            with self._lock:
                self._spare += 1


def _run(
    loop: asyncio.AbstractEventLoop, outcome: asyncio.Future[Any], call: Callable[[], object]
) -> None:
    try:
        result = call()
    except BaseException as exc:  # handed to the task that awaits it, whatever it is
        with contextlib.suppress(RuntimeError):  # the loop was closed meanwhile
            loop.call_soon_threadsafe(_fail, outcome, exc)
    else:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_succeed, outcome, result)


def _succeed(outcome: asyncio.Future[Any], result: object) -> None:
    if not outcome.done():
        outcome.set_result(result)


def _fail(outcome: asyncio.Future[Any], exc: BaseException) -> None:
    if not outcome.done():
        outcome.set_exception(exc)


_helpers = _Helpers()


def run_off_loop(call: Callable[[], object]) -> asyncio.Future[Any]:
    """Run ``call()`` on a helper thread; a future of the running loop gets its outcome."""
    import asyncio  # noqa: PLC0415 (loaded only where a loop runs)

    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[Any] = loop.create_future()
    _helpers.submit((loop, outcome, call))
    return outcome


def _forget_helpers() -> None:
    """In a forked child: the parent's threads did not come along."""
    global _helpers
    _helpers = _Helpers()


os.register_at_fork(after_in_child=_forget_helpers)
