"""The children this process is starting with a sender handle, until each has a pid.

Under spawn and forkserver a handle reaches a child by pickling as it starts
(``Core.handing_over``). The child may die before it ever uses the handle (the
spawn mistake), so each backend counts it as a sender from its pid on; this
keeps the list in between, for every backend alike.
"""

from __future__ import annotations

import threading
from multiprocessing.context import get_spawning_popen

from .liveness import pid_alive, started_pid
from .per_process import PerProcess

__all__ = ["Handed"]


class _Children:
    """This process's children started with a handle, and the lock over them."""

    __slots__ = ("lock", "pending", "watched")

    def __init__(self) -> None:
        self.pending: list[tuple[object, int]] = []  # (Popen, token) until it has a pid
        self.watched: list[tuple[int, int, int]] = []  # (pid, stamp, token) until it dies
        self.lock = threading.Lock()  # a thread may start a child while another settles


class Handed:
    """One process's children being started with a handle: (Popen, token) until they have a pid.

    A forked child starts with none: the children its parent was starting are
    the parent's to settle.
    """

    __slots__ = ("_children", "hint")

    def __init__(self) -> None:
        self._children: PerProcess[_Children] = PerProcess()
        #: False while no process started or watched a child here: a check with no call,
        #: for hot paths. True, ``bool(handed)`` says whether the children are this process's.
        self.hint = False

    def note(self, token: int) -> bool:
        """Remember the child being started, if any, as holding ``token``; whether there was one."""
        popen = get_spawning_popen()
        if popen is None:
            return False
        children = self._children.get(_Children)
        with children.lock:
            children.pending.append((popen, token))
            self.hint = True
        return True

    def started(self) -> list[tuple[int, int]]:
        """(pid, token) of each child that has a pid now, each once."""
        children = self._children.here()
        if children is None:
            return []
        with children.lock:
            pending = children.pending
            ready = [(started_pid(p), t) for p, t in pending if started_pid(p)]
            if ready:
                children.pending = [(p, t) for p, t in pending if not started_pid(p)]
        return ready

    def watch(self, started: list[tuple[int, int, int]]) -> None:
        """Watch each started child, as (pid, stamp, token), in this process until it dies.

        For a backend whose server cannot see this machine's pids.
        """
        children = self._children.get(_Children)
        with children.lock:
            children.watched.extend(started)
            self.hint = True

    def died(self) -> list[tuple[int, int, int]]:
        """The watched children that died, each once."""
        children = self._children.here()
        if children is None or not children.watched:
            return []
        with children.lock:
            dead = [w for w in children.watched if not pid_alive(w[0], w[1])]
            for watched in dead:
                children.watched.remove(watched)
        return dead

    def __bool__(self) -> bool:
        """Whether this process starts or watches any child with a handle (a cheap check)."""
        children = self._children.here()
        return children is not None and bool(children.pending or children.watched)
