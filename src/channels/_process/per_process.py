"""``PerProcess``: a value that belongs to the process that made it.

Connections, threads and locks cannot be shared with a forked child (or with a
process that unpickled their holder). A holder keeps such a value in a
``PerProcess``: in another process, the next ``get`` makes a fresh one instead
of using the parent's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from .liveness import this_process

__all__ = ["PerProcess"]

V = TypeVar("V")


class PerProcess(Generic[V]):
    """One value per process, made on first use in each."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: tuple[int, V] | None = None

    def get(self, make: Callable[[], V]) -> V:
        """This process's value, made by ``make`` if it has none yet."""
        held = self._held
        if held is None or held[0] != this_process.pid:
            held = (this_process.pid, make())
            self._held = held
        return held[1]

    def set(self, value: V) -> None:
        """Make ``value`` this process's value."""
        self._held = (this_process.pid, value)

    def here(self) -> V | None:
        """This process's value, or None if it has made none."""
        held = self._held
        return held[1] if held is not None and held[0] == this_process.pid else None
