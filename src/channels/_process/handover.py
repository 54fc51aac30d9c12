"""The children this process is starting with a sender handle, until each has a pid.

Under spawn and forkserver a handle reaches a child by pickling as it starts
(``Core.handing_over``). The child may die before it ever uses the handle (the
spawn mistake), so each backend counts it as a sender from its pid on; this
keeps the list in between, for every backend alike.
"""

from __future__ import annotations

import threading
from multiprocessing.context import get_spawning_popen

from .liveness import started_pid, this_process

__all__ = ["Handed"]


class Handed:
    """One process's children being started with a handle: (Popen, token) until they have a pid.

    A forked child starts with none: the children its parent was starting are
    the parent's to settle.
    """

    __slots__ = ("_lock", "_pid", "pending")

    def __init__(self) -> None:
        #: (Popen, token) of each child not yet settled; read it, never change it. Empty,
        #: it says at once that there is nothing to settle (truth: ``bool(handed)``).
        self.pending: list[tuple[object, int]] = []
        self._pid = this_process.pid
        self._lock = threading.Lock()  # a thread may start a child while another settles

    def note(self, token: int) -> bool:
        """Remember the child being started, if any, as holding ``token``; whether there was one."""
        popen = get_spawning_popen()
        if popen is None:
            return False
        self._own()
        with self._lock:
            self.pending.append((popen, token))
        return True

    def started(self) -> list[tuple[int, int]]:
        """(pid, token) of each child that has a pid now, each once."""
        self._own()
        with self._lock:
            ready = [(started_pid(p), t) for p, t in self.pending if started_pid(p)]
            if ready:
                self.pending = [(p, t) for p, t in self.pending if not started_pid(p)]
        return ready

    def __bool__(self) -> bool:
        """Whether this process is starting any child with a handle (a cheap check)."""
        return bool(self.pending) and self._pid == this_process.pid

    def _own(self) -> None:
        if self._pid != this_process.pid:  # forked: the pending children are the parent's
            self.pending, self._pid, self._lock = [], this_process.pid, threading.Lock()
