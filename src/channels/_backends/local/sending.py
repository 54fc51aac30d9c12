"""Putting items in a local channel: the pipe, the overflow, shared memory."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NoReturn, cast

from ..._codec.payloads import Batch, OutOfBand, Payload, in_band
from ..._engine import steps as _steps
from ..._engine.conditions import (
    check_sendable,
)
from ..._engine.contract import Data
from ..._engine.ledger import BROKEN
from ..._errors import ChannelBroken, ChannelError
from ..._process.liveness import pid_alive, this_process
from ..._process.robust_lock import release_failed
from .locks import Locked
from .opening import NO_SPACE, os_reason
from .state import (
    FLAGS,
    OVERFLOW_READ,
    OVERFLOW_WRITTEN,
    PIPE_DRAINED,
    PIPE_FRAME,
    PIPE_PAYLOAD,
    RECEIVED,
    SENT,
    TICKET_BIT,
    TICKETS,
    TRANSPORT_WORDS,
)

_head = PIPE_FRAME.pack


class Sending(Locked):
    """The write side: ``put`` and what it needs."""

    __slots__ = ()

    def put(self, token: int, items: Sequence[Payload], deadline: float | None) -> int:
        """Put as many of ``items`` as fit now; the write lock is taken once for them all.

        One small item on an unbounded channel whose overflow is empty, sent on the
        handle this process sent on last, goes straight into the pipe: the same
        stores and steps as ``_put_counted``, without its calls.
        """
        # The write lock stays even where the pipe write alone is atomic (PIPE_BUF),
        # as multiprocessing.Pipe has it, and for a batch as well. It also orders:
        # - the pipe against the overflow. A writer that saw the overflow empty, then
        #   wrote to the pipe after another writer (the pipe full for it) appended to
        #   the overflow and a reader turned to it (PIPE_DRAINED), leaves its item
        #   in the pipe behind its own next item, which goes to the overflow and is
        #   received first: per-sender FIFO broken.
        # - a close of the same handle in another process (close takes this lock):
        #   without it a send could return after a receiver saw the end, and its
        #   item would never be received.
        # - SENT, a read-modify-write that stats, join and the bound rely on.
        # A death anywhere is safe without it; the rest is not, and Python has no
        # atomic read-modify-write on shared memory to replace it.
        if rc := self._wtry():
            self._lock_after(self._wlock, rc, deadline)
        try:
            step = _steps.step
            if step:
                step("send:locked")
            words = self._words
            if (
                token != self._sending
                or self._noted_pid != this_process.pid
                or words[self._slot_at] != self._slot_open
                or words[FLAGS] & BROKEN
            ):
                self._check_sender(token)
            if len(items) != 1 or not self._unbounded:
                return self._put_each(items)
            data = items[0]
            if (
                type(data) is not bytes
                or len(data) > PIPE_PAYLOAD
                or words[OVERFLOW_WRITTEN] != words[OVERFLOW_READ]
            ):
                self._put_counted(data)
                return 1
            if words[PIPE_DRAINED]:
                words[PIPE_DRAINED] = 0  # before the item: then the pipe is read first again
            try:
                os.write(self._wfd, _head(len(data) + 1) + data)
            except BlockingIOError:  # the pipe is full: the overflow takes it
                self._put_counted(data)
                return 1
            except BrokenPipeError as exc:
                raise ChannelBroken("every receiving end of the channel is closed") from exc
            if step:
                step("send:written")
            words[SENT] += 1
            if step:
                step("send:counted")
            return 1
        finally:
            if rc := self._wunlock():
                release_failed(rc)

    def _check_sender(self, token: int) -> None:
        """Raise if ``token`` cannot send; note this process as its sender (once), and
        remember it as the handle ``put`` checks from the words alone."""
        ledger = self._ledger
        if not ledger.sendable(token):
            check_sendable(ledger, token)
        if self._noted_pid != this_process.pid or token not in self._noted:
            self._note_sender(token)
        at, self._slot_open = ledger.open_word(token)
        self._slot_at = TRANSPORT_WORDS + at
        self._sending = token

    def _put_each(self, items: Sequence[Payload]) -> int:
        """``put``'s loop for a batch, or for any item on a bounded channel."""
        words = self._words
        bound = self._settings.maxsize
        done = 0
        count = len(items)
        batch = count > 1
        while done < count:
            room = bound - (words[SENT] - words[RECEIVED]) if bound else count
            if room <= 0:
                break
            if batch:
                try:
                    sent = self._put_run(items, done, min(count, done + room))
                except ChannelError:
                    if done:
                        break
                    raise
                if sent:
                    done += sent
                    continue
            try:
                self._put_counted(items[done], batch)
            except ChannelError:
                if done:
                    break  # what went is sent; the next put raises again
                raise
            done += 1
        return done

    def _put_counted(self, payload: Payload, batch: bool = False) -> None:
        """``_put`` one item, then count it sent; or a stored batch (``_put_batch``)."""
        if type(payload) is Batch:  # never on a bounded channel (stores_batches)
            self._put_batch(payload)
            return
        self._put(cast("Data | OutOfBand", payload), batch)
        step = _steps.step
        if step:
            step("send:written")
        self._words[SENT] += 1
        if step:
            step("send:counted")

    def _put_batch(self, batch: Batch) -> None:
        """Append a stored batch to the overflow, committed with one store, and count it."""
        step = _steps.step
        try:
            if self._overflow.append_batch(batch.data, batch.count):
                self._wake()
        except OSError as exc:
            self._no_room(exc)
        if step:
            step("send:written")
        self._words[SENT] += batch.count
        if step:
            step("send:counted")

    @property
    def stores_batches(self) -> bool:
        """Whether ``send_many`` may hand over a ``Batch``: on an unbounded channel, where
        a batch never waits for room as a whole."""
        return not self._settings.maxsize

    def _put_run(self, items: Sequence[Payload], start: int, end: int) -> int:
        """Append a run of a batch to the overflow, committed and counted at once."""
        overflow, step = self._overflow, _steps.step
        was_empty = not overflow.pending()
        try:
            sent = overflow.append_many(items, start, end)
        except OSError as exc:
            self._no_room(exc)
        if sent:
            if was_empty:
                self._wake()
            if step:
                step("send:written")
            self._words[SENT] += sent
            if step:
                step("send:counted")
        return sent

    def _note_sender(self, token: int) -> None:
        """Record, once per process and handle, that this process sends on ``token``."""
        if self._noted_pid != this_process.pid:
            self._noted = set()
            self._noted_pid = this_process.pid
        self._ledger.note_sender(this_process.pid, this_process.stamp, token, pid_alive)
        self._noted.add(token)

    def _put(self, payload: Data | OutOfBand, batch: bool = False) -> None:
        """Move one item into the pipe, or else the overflow; the caller holds the write lock.

        The items of a batch go straight to the overflow: a copy each into shared
        pages, not a system call each. A large item's buffers go to shared memory
        first, and its ticket takes its place in the stream.
        """
        data: Data
        marked = False
        if isinstance(payload, OutOfBand):
            data, marked = self._ship(payload)
        else:
            data = payload
        size = len(data)
        if size <= PIPE_PAYLOAD and not batch and not self._overflow.pending():
            words = self._words
            if words[PIPE_DRAINED]:
                words[PIPE_DRAINED] = 0  # before the item: then the pipe is read first again
            try:
                head = (size + 1) | (TICKET_BIT if marked else 0)
                os.write(self._wfd, _head(head) + data)
                return
            except BlockingIOError:
                pass
            except BrokenPipeError as exc:
                raise ChannelBroken("every receiving end of the channel is closed") from exc
        try:
            if self._overflow.append(data, marked):
                self._wake()
        except OSError as exc:
            self._no_room(exc)

    def _no_room(self, exc: OSError) -> NoReturn:
        what = "no space is left for" if exc.errno in NO_SPACE else "cannot store"
        raise ChannelError(
            f"{what} the item in the channel's overflow file ({os_reason(exc)}); nothing was sent"
        ) from exc

    def _ship(self, payload: OutOfBand) -> tuple[bytes, bool]:
        """Put a large item's buffers in shared memory: its ticket, and True.

        Where shared memory or the side socket is full, the item goes in band
        instead (its bytes, and False), so a send never fails for want of it.
        """
        words = self._words
        number = words[TICKETS] + 1
        try:
            ticket = self._side().ship(number, payload)
        except OSError:
            return in_band(payload), False
        words[TICKETS] = number
        if _steps.step:
            _steps.step("shm:shipped")
        return ticket, True
