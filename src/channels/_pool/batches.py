"""A batch of ``channels worker`` items run in one pool worker, and where a crash stopped it.

A pool worker that dies fails its whole task, and the pool cannot say which
item of it was running. So before each item, ``run_batch`` writes the item's
place in the batch into a slot of ``Marks``, memory shared with the parent
(it reaches each worker when it starts, through the pool's initializer); when
the worker dies, the parent reads there which item killed it and which items
never started.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from multiprocessing.heap import Arena
from typing import final

from .remote_errors import pack_exception

__all__ = ["Marks", "install", "run_batch"]

#: The worker's marks, set by ``install`` when it starts.
_marks = memoryview(bytearray(8)).cast("q")


@final
class Marks:
    """One counter per slot, in memory the workers share: how far its batch got.

    The memory is a file mapped by every process (multiprocessing's ``Arena``,
    what its shared ctypes live in): it reaches a worker when the worker
    starts, whatever the start method, and its file is closed once ``Marks``
    is collected.
    """

    def __init__(self, slots: int) -> None:
        #: What the pool's initializer gets (``install``).
        self.shared = Arena(8 * slots)
        self._counts = memoryview(self.shared.buffer).cast("q")

    def reset(self, slot: int) -> None:
        """Before a batch of ``slot``'s is submitted: nothing of it started."""
        self._counts[slot] = 0

    def started(self, slot: int) -> int:
        """How many items of ``slot``'s last batch were started."""
        return self._counts[slot]


def install(shared: Arena) -> None:
    """The pool's initializer: keep the counters ``run_batch`` writes to."""
    global _marks  # one per worker process, set once when it starts
    _marks = memoryview(shared.buffer).cast("q")


def run_batch(
    fn: Callable[[object], object], items: list[object], slot: int
) -> tuple[list[object], tuple[int, bytes] | None, float]:
    """``fn`` on each item in order, until one raises.

    Returns the results, ``(index, packed exception)`` for the item that
    raised (the items after it did not run), and the seconds it took.
    """
    marks = _marks
    values: list[object] = []
    start = time.perf_counter()
    for index, item in enumerate(items):
        marks[slot] = index + 1
        try:
            values.append(fn(item))
        except BaseException as exc:
            return values, (index, pack_exception(exc)), time.perf_counter() - start
    return values, None, time.perf_counter() - start
