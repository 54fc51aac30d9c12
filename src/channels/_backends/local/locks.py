"""Taking a local channel's locks, and repairing what a holder that died left.

Also the sweeps that mark a channel broken when the peers it waits for are all
dead, and the noting of children started with a handle (``handing_over``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from typing import NoReturn

from ..._engine.conditions import Broken, Condition, error
from ..._engine.ledger import (
    BROKEN,
    ENDED,
)
from ..._errors import ChannelTimeout
from ..._process.liveness import pid_alive, process_stamp
from ..._process.robust_lock import OWNER_DIED, RobustMutex
from .state import (
    R_TORN,
    RECEIVED,
    TAKING,
    W_TORN,
    Base,
)


class Locked(Base):
    """The locks, their repair, and the sweeps for dead peers."""

    __slots__ = ()

    def _settle(self, deadline: float | None = None) -> None:
        """Note each started child that a handle was handed to (see ``handing_over``).

        ``ChannelTimeout`` if the write lock stays busy until ``deadline``; the
        children are then noted at a later call.
        """
        with self._books(deadline):
            for pid, token in self._handed.started():
                if self._ledger.is_open(token):  # a handle closed since counts no sender
                    self._ledger.note_sender(pid, process_stamp(pid), token, pid_alive)

    # -- locks, and repairing after a holder died ------------------------------------

    def _take_lock(self, lock: RobustMutex, deadline: float | None) -> None:
        got = lock.acquire(deadline)
        if got != 0:
            self._acquired(lock, got)

    def _lock_after(self, lock: RobustMutex, rc: int, deadline: float | None) -> None:
        """Hold ``lock`` after its ``try_now`` answered ``rc`` (not 0), repaired if need be."""
        got = lock.acquire_after(rc, deadline)
        if got != 0:
            self._acquired(lock, got)

    def _acquired(self, lock: RobustMutex, got: int | None) -> None:
        """After ``acquire`` answered other than 0: time out, or repair after a dead holder."""
        if got is None:
            raise ChannelTimeout("another process held the channel's lock until the timeout")
        self._recover(lock)

    def _try_lock(self, lock: RobustMutex) -> bool:
        got = lock.try_acquire()
        if got == OWNER_DIED:
            self._recover(lock)
        return got is not None

    def _recover(self, lock: RobustMutex) -> None:
        """Repair what a dead holder of ``lock`` left, then mark the lock usable again.

        Each repair is idempotent: a process that dies while repairing hands the
        same work to the next holder. If the repair itself fails, the lock is let
        go unrepaired, which leaves it unusable: every later call then raises
        ``ChannelBroken`` rather than trust a state nobody repaired.
        """
        try:
            if lock is self._wlock:
                self._recover_writer()
            else:
                self._recover_reader()
        except BaseException:
            lock.release()
            raise
        lock.recovered()

    def _recover_writer(self) -> None:
        words, ledger = self._words, self._ledger
        if ledger.repair():
            self._wake()
        if words[W_TORN]:
            ledger.mark_broken(Broken.TORN)
            self._wake()
            words[W_TORN] = 0

    def _recover_reader(self) -> None:
        words = self._words
        taking = words[TAKING]
        if taking:
            # The dead reader may or may not have taken its item: count it taken, so a
            # bounded channel errs towards one more item of room, never one less.
            words[RECEIVED] = max(words[RECEIVED], taking)
            words[TAKING] = 0
        if words[R_TORN]:
            with self._books():
                self._ledger.mark_broken(Broken.TORN)
            words[R_TORN] = 0
        if self._settings.maxsize:
            self._room()

    @contextlib.contextmanager
    def _books(self, deadline: float | None = None) -> Generator[None]:
        """Hold the write lock, which also orders every change to the ledger."""
        self._take_lock(self._wlock, deadline)
        try:
            yield
        finally:
            self._wlock.release()

    # -- failures ------------------------------------------------------------------

    def _tear(self, what: str) -> NoReturn:
        with self._books():
            self._ledger.mark_broken(Broken.TORN)
        self._words[R_TORN] = 0
        raise error(Condition.BROKEN, Broken.TORN, f"read {what}")

    def _look_for_dead(self, *, receivers: bool) -> None:
        """After an idle wait: mark the channel broken if the peers it waits for are all dead."""
        ledger = self._ledger
        if ledger.flags & (ENDED | BROKEN):
            return
        if not self._try_lock(self._wlock):
            return  # a live process holds it: someone is at work
        try:
            if receivers:
                if ledger.receivers_gone(pid_alive):
                    ledger.mark_broken(Broken.RECEIVERS_GONE)
                    self._room()
            elif ledger.senders_gone(pid_alive):
                ledger.mark_broken(Broken.SENDERS_GONE)
                self._wake()
        finally:
            self._wlock.release()
