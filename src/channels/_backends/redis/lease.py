"""Leases: while a process lives, one thread keeps its channels' leases fresh.

A sender's lease says "this process may still send on this handle"; a
receiver's says "the items I hold are being worked on". When a process dies its
leases lapse, and the others act: a channel whose senders all lapsed breaks,
and a lapsed receiver's items go to another receiver. At a normal exit, each
receiver acknowledges what it took, so nothing is delivered twice.

A child started (under spawn or forkserver) with a sender handle gets a lease
too, before it ever sends: the process that started it takes it out once the
child has a pid and keeps it fresh while the child runs, and the child keeps it
fresh itself from its start, so the lease lapses exactly when the child dies,
even one that dies before it ever reached the server.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
import weakref
from multiprocessing import util
from typing import Protocol

from ..._process.per_process import PerProcess

__all__ = ["Leaseholder", "born_suffix", "hold", "process_name"]

log = logging.getLogger(__name__)


class Leaseholder(Protocol):
    """What the heartbeat thread asks of a core."""

    @property
    def lease(self) -> float: ...

    def renew(self) -> None:
        """Extend this core's leases in this process (one round trip)."""
        ...

    def at_exit(self) -> None:
        """Acknowledge what this process took, before it exits."""
        ...


class _Heart:
    """The per-process registry of leaseholders and the thread that renews them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holders: weakref.WeakSet[Leaseholder] = weakref.WeakSet()
        self.due: weakref.WeakKeyDictionary[Leaseholder, float] = weakref.WeakKeyDictionary()
        self.failing: weakref.WeakSet[Leaseholder] = weakref.WeakSet()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def hold(self, holder: Leaseholder) -> None:
        with self.lock:
            if holder in self.holders:
                return
            self.holders.add(holder)
            self.due[holder] = time.monotonic() + holder.lease / 3
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._beat, name="channels-redis-leases", daemon=True
                )
                self.thread.start()
                # Run by multiprocessing's exit hook: at interpreter exit, and also in
                # its child processes, which leave without running atexit.
                util.Finalize(None, self.exit, exitpriority=100)

    def _beat(self) -> None:
        while True:
            soonest = self._renew_due()
            self.wake.wait(max(0.01, soonest - time.monotonic()))

    def _renew_due(self) -> float:
        """Renew every lease that is due; return when the next one is (no reference kept)."""
        with self.lock:
            holders = list(self.holders)
        now = time.monotonic()
        soonest = now + 1.0
        for holder in holders:
            due = self.due.get(holder, now)
            if due <= now:
                try:
                    holder.renew()
                except Exception as exc:  # the server may be away: try again next beat
                    # Said once per failing run: a lease that lapses breaks channels.
                    level = logging.DEBUG if holder in self.failing else logging.WARNING
                    log.log(level, "could not renew the leases of %s: %s", repr(holder), str(exc))
                    self.failing.add(holder)
                else:
                    self.failing.discard(holder)
                due = now + holder.lease / 3
                self.due[holder] = due
            soonest = min(soonest, due)
        return soonest

    def exit(self) -> None:
        with self.lock:
            holders = list(self.holders)
        for holder in holders:
            try:
                holder.at_exit()
            except Exception as exc:
                log.debug("could not acknowledge at exit: %s", str(exc))


#: This process's leaseholders: a child's are its own, never its parent's.
_heart: PerProcess[_Heart] = PerProcess()


def hold(holder: Leaseholder) -> None:
    """Keep ``holder``'s leases fresh while it lives in this process."""
    _heart.get(_Heart).hold(holder)


def process_name() -> str:
    """A name for this process that no other process, on any machine, has."""
    return _heart.get(_Heart).name


def born_suffix(pid: int, stamp: int) -> str:
    """The end of the lease held for a child started with a handle: ``TOKEN`` + this.

    Both the process that started it and the child itself can name it, from
    the child's pid and start time, so either can keep it fresh.
    """
    return f"|born:{socket.gethostname()}:{pid}:{stamp}"
