"""Taking items from a local channel: the pipe first, then runs of the overflow."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import cast

from ..._codec.payloads import OutOfBand, Part, Payload
from ..._engine import steps as _steps
from ..._engine.conditions import (
    Broken,
    Condition,
    error,
    nothing_left,
)
from ..._engine.contract import Data
from ..._engine.ledger import (
    BROKEN,
)
from ..._errors import ChannelBroken, EndOfChannel
from ..._process.liveness import pid_alive, this_process
from ..._process.robust_lock import release_failed
from .locks import Locked
from .state import (
    FLAGS,
    OVERFLOW_READ,
    OVERFLOW_WRITTEN,
    PIPE_BUF,
    PIPE_DRAINED,
    PIPE_FRAME,
    PIPE_PAYLOAD,
    R_TORN,
    RECEIVED,
    RUN,
    SENT,
    TAKING,
    TICKET_BIT,
)

HEAD = PIPE_FRAME.size
_head = PIPE_FRAME.unpack_from


class Receiving(Locked):
    """The read side: ``take`` and what it needs."""

    __slots__ = ()

    def take(self, max_items: int, deadline: float | None) -> list[Payload]:
        """Take up to ``max_items`` ready items; the read lock is taken once for them all."""
        if self._receiving_pid != this_process.pid:
            self._note_receiver(deadline)
        if self._handed.hint and self._handed:
            self._settle(deadline)
        if rc := self._rtry():
            self._lock_after(self._rlock, rc, deadline)
        words = self._words
        got: list[Payload] = []
        count = 0  # items in got: a part of a stored batch may hold several
        try:
            step = _steps.step
            if step:
                step("recv:locked")
            while count < max_items:
                if words[PIPE_DRAINED] and not words[FLAGS] & BROKEN:
                    run, taken = self._take_run(max_items - count)
                    if run:
                        got += run
                        count += taken
                        continue
                try:
                    data = self._take_one(step)
                except (EndOfChannel, ChannelBroken):
                    if got:
                        break
                    raise
                if data is None:
                    break
                if data is not RUN:
                    got.append(data)
                    count += 1
        finally:
            words[TAKING] = 0
            if rc := self._runlock():
                release_failed(rc)
        if got and not self._unbounded:
            self._made_room(count)
        return got

    def _take_one(self, step: Callable[[str], None] | None) -> Payload | None:
        """One item, pipe first, counted taken; None if none is ready, ``RUN`` if it is
        the overflow's turn; the caller holds the read lock."""
        words = self._words
        joinable = self._joinable
        if joinable:  # held before taken: a live receiver never holds less than it took
            self._hold(1)
        words[TAKING] = words[RECEIVED] + 1
        if step:
            step("recv:taking")
        try:
            data = self._take()
        except (EndOfChannel, ChannelBroken):
            if joinable:
                self._hold(-1)
            raise
        if data is None or data is RUN:
            if joinable:
                self._hold(-1)
            return data
        if step:
            step("recv:taken")
        words[RECEIVED] = words[TAKING]
        if step:
            step("recv:counted")
        return data

    def _made_room(self, taken: int) -> None:
        """After taking ``taken`` items: if the channel was full, wake the waiting senders."""
        words = self._words
        if words[SENT] - words[RECEIVED] + taken >= self._settings.maxsize:
            self._room()

    def _hold(self, count: int) -> None:
        """Change the count of items this receiver holds (joinable channels)."""
        with self._hold_lock:
            self._ledger.hold(self._rentry, count)

    def _take_run(self, limit: int) -> tuple[list[bytes | Part], int]:
        """Once only the overflow is read: take a run of it, up to ``limit`` items, with one
        store (three where it splits a stored batch); the payloads and their items."""
        overflow, words, step = self._overflow, self._words, _steps.step
        items, count, upto, split = overflow.peek_many(limit)
        if not items:
            return items, 0
        if self._settings.joinable:  # held before taken, as for one item
            self._hold(count)
        taking = words[TAKING] = words[RECEIVED] + count
        if step:
            step("recv:taking")
        overflow.take_to(upto, split)
        if step:
            step("recv:taken")
        words[RECEIVED] = taking
        if step:
            step("recv:counted")
        if not overflow.pending():
            self._overflow_drained()
        return items, count

    def _take(self) -> Payload | None:
        """The next item, or None, or ``RUN`` when the overflow's turn has just come;
        the caller holds the read lock."""
        words = self._words
        while True:
            flags = words[FLAGS]
            if flags & BROKEN and self._ledger.broken_why == Broken.TORN:
                raise error(Condition.BROKEN, Broken.TORN)
            # The overflow only ever holds items newer than the pipe's, so it is
            # read only once the pipe was seen empty *after* the overflow had items.
            pending = words[OVERFLOW_WRITTEN] != words[OVERFLOW_READ]
            if not (pending and words[PIPE_DRAINED]):
                data: Payload | None = None
                if self._packets:  # one read is one whole frame: nothing can tear it
                    try:
                        frame = os.read(self._rfd, PIPE_BUF)
                    except BlockingIOError:
                        pass
                    else:
                        size = len(frame) - HEAD
                        if size >= 0 and _head(frame)[0] == size + 1:  # an item, in band
                            return frame[HEAD:]
                        data = self._read_pipe(frame)
                else:
                    data = self._read_pipe()
                if data is not None:
                    return data
                if pending:
                    words[PIPE_DRAINED] = 1
                    # No reader reads the pipe again until the overflow drains: a wake-up
                    # left in it keeps every waiting receiver awake while items remain.
                    self._wake()
                    return RUN  # the overflow's turn: take a run of it, not one item
            if pending:
                data = self._from_overflow()
                if data is not None:
                    return data
                continue
            if words[OVERFLOW_WRITTEN] != words[OVERFLOW_READ]:
                continue  # the overflow filled after we looked: the pipe may hold older items
            if _steps.step:
                _steps.step("recv:empty")
            nothing_left(self._ledger, flags)  # as read before looking: see nothing_left
            return None

    def _read_pipe(self, frame: bytes | None = None) -> Payload | None:
        """Take one item from the pipe, or None if it holds none (wake-ups are skipped);
        ``frame``: one read already, in packet mode."""
        fd = self._rfd
        while True:
            if frame is None:
                try:
                    frame = os.read(fd, PIPE_BUF if self._packets else HEAD)
                except BlockingIOError:
                    return None
            head = frame[:HEAD]
            if len(head) != HEAD:
                self._tear(f"a frame header of {len(head)} bytes")
            (size,) = PIPE_FRAME.unpack(head)
            if size == 0:
                frame = None
                continue
            marked = size & TICKET_BIT
            size = (size & ~TICKET_BIT) - 1
            if size > PIPE_PAYLOAD:
                self._tear(f"a pipe frame claiming {size} bytes")
            data: Data
            if not self._packets:
                data = self._read_payload(fd, size)
            elif len(frame) != HEAD + size:
                self._tear(f"a frame of {len(frame)} bytes claiming {size}")
            else:
                data = memoryview(frame)[HEAD : HEAD + size]
            return self._redeem(data) if marked else data

    def _read_payload(self, fd: int, size: int) -> bytes:
        """The second read of a frame, where the pipe has no packet mode."""
        words = self._words
        words[R_TORN] = 1
        try:
            data = os.read(fd, size) if size else b""
        except BlockingIOError:
            data = b""
        if len(data) != size:
            self._tear(f"{len(data)} of {size} bytes of an item")
        words[R_TORN] = 0
        return data

    def _from_overflow(self) -> Payload | None:
        """Take the oldest overflow item; compact the overflow once it is drained."""
        overflow = self._overflow
        raw = overflow.take()
        data: Payload | None = raw
        if raw is not None and overflow.marked:
            data = self._redeem(cast(bytes, raw))
        if data is None or not overflow.pending():
            self._overflow_drained()
        return data

    def _overflow_drained(self) -> None:
        """Start the overflow over if it grew. Writers use the pipe again now; the first
        to write an item there clears ``PIPE_DRAINED``."""
        overflow = self._overflow
        if overflow.needs_rewind() and self._try_lock(self._wlock):
            try:
                overflow.rewind()
            finally:
                self._wlock.release()

    def _note_receiver(self, deadline: float | None) -> None:
        with self._books(deadline):
            self._rentry = self._ledger.note_receiver(
                this_process.pid, this_process.stamp, pid_alive
            )
        self._receiving_pid = this_process.pid

    def _redeem(self, ticket: Data) -> OutOfBand:
        if _steps.step:
            _steps.step("shm:redeeming")
        return self._side().redeem(ticket)
