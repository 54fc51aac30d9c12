"""The ``thread`` backend's runs: producers and consumers are threads of this process.

``THREADS`` stands where the other runs take a ``multiprocessing`` context: it
makes threads instead of processes, and ``threading``/``queue`` objects instead
of process-shared ones, so the same measurements run unchanged.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from multiprocessing.context import BaseContext
from typing import cast

__all__ = ["THREADS"]


class _Worker(threading.Thread):
    """A thread that answers as a process does: ``exitcode``, and a ``pid`` of None."""

    pid = None

    def __init__(
        self, target: Callable[..., object], args: tuple[object, ...], name: str, daemon: bool
    ) -> None:
        super().__init__(target=self._run, args=(target, args), name=name, daemon=daemon)
        self.exitcode: int | None = None

    def _run(self, target: Callable[..., object], args: tuple[object, ...]) -> None:
        self.exitcode = 1
        target(*args)
        self.exitcode = 0


class _Results(queue.Queue[object]):
    """A results queue with the two calls the runs make on a process queue when done."""

    def close(self) -> None:
        """Nothing to close."""

    def join_thread(self) -> None:
        """No feeder thread to wait for."""


class _ThreadContext:
    """Threads and thread-level objects, under the names of a ``multiprocessing`` context."""

    Process = _Worker
    Semaphore = threading.Semaphore
    Event = threading.Event

    def Queue(self, maxsize: int = 0) -> _Results:
        return _Results(maxsize)

    def get_start_method(self) -> str:
        return "thread"


#: The stand-in context for thread channels (see the module docstring).
THREADS = cast(BaseContext, _ThreadContext())
