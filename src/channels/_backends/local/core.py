"""The core of the local backends: a pipe, two robust locks, and an overflow file.

These are the parts ``multiprocessing.Queue`` is made of, driven synchronously:
there is no feeder thread, so when ``send`` returns the item is out of the
sender's memory and a crash right after loses nothing.

Items travel through the OS pipe when a frame fits in one atomic write
(``PIPE_BUF``) and the pipe has room. Otherwise they go to an overflow file
shared by every process (created unlinked, so nothing is left behind), so an
unbounded channel never makes ``send`` wait, however slow the receivers. While
the overflow holds items every new item goes there too, and receivers empty the
pipe before the overflow, so the order is kept.

The first page of that file holds two robust mutexes (``_robust``), the
channel's ``Ledger`` and a few transport words. The write lock orders writers
and every change to the ledger; the read lock orders readers. A process may take
the write lock while it holds the read lock, never the other way round. Why a
death at any instruction can neither wedge nor corrupt a channel is written out
step by step in ``docs/architecture.md``; ``_steps`` names the points the tests
kill at.

On an unbounded channel a whole ``send_many`` may come as one ``_codec.Batch``
(its items pickled once as a list), stored as one overflow frame and taken
whole or in parts (``overflow``'s docstring gives the format): a receiver
killed while taking has taken at most the ``max_items`` of its call.

A bounded channel counts items sent and taken (``_SENT``, ``_RECEIVED``); a
reader that takes the last item of a full channel writes a byte into a second
pipe, the *room* pipe, on which full senders wait.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import select
import struct
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from multiprocessing import reduction
from multiprocessing.context import get_spawning_popen
from typing import ClassVar, NoReturn, Protocol, cast

from ... import _steps
from ..._codec import Batch, OutOfBand, Part, Payload, in_band
from ..._config import (
    ContextSpec,
    SerializerSpec,
    check_maxsize,
    check_message_limit,
    resolve_context,
)
from ..._core import POLL_SLICE, ChannelStats, Data
from ..._errors import ChannelBroken, ChannelError, ChannelTimeout, ConfigError, EndOfChannel
from ..._handover import Handed
from ..._ledger import (
    BROKEN,
    BROKEN_RECEIVERS_GONE,
    BROKEN_SENDERS_GONE,
    BROKEN_TORN,
    ENDED,
    WHY,
    WORDS,
    Ledger,
)
from ..._liveness import me, pid_alive, process_stamp
from ..._policy import (
    check_clonable,
    check_sendable,
    lost_unfinished,
    not_joinable,
    nothing_left,
    nothing_to_mark,
)
from ..._robust import MUTEX_BYTES, OWNER_DIED, RobustMutex
from ..._serialize import Serializer, resolve_serializer
from .overflow import WORDS as OVERFLOW_WORDS
from .overflow import Overflow
from .shm import Shm, side_pair

__all__ = ["LocalCore", "Settings"]

# The state page: the two mutexes, then 64-bit words.
_RLOCK_AT, _WLOCK_AT, _WORDS_AT = 0, MUTEX_BYTES, 4 * MUTEX_BYTES
# Transport words. _W_TORN / _R_TORN: the overflow is in the middle of an update
# spanning several words, under the write / read lock. _PIPE_DRAINED: a reader
# found the pipe empty while the overflow held items, so the pipe holds no item
# older than the overflow's; a writer clears it before it next writes an item to
# the pipe (which it does only while the overflow is empty). _TAKING: a reader
# is between taking an item and counting it, and this is the count to reach.
# _DONE: items marked done (joinable channels). _TICKETS: the number of the last
# large item's ticket (see shm).
_W_TORN, _R_TORN, _PIPE_DRAINED, _SENT, _RECEIVED, _TAKING, _DONE, _TICKETS = range(8)
_OVERFLOW = 8  # the overflow's words follow
_RUN = b"<the overflow's turn>"  # from _take: no item, take a run of the overflow
_TRANSPORT_WORDS = _OVERFLOW + OVERFLOW_WORDS
_STATE_BYTES = _WORDS_AT + (_TRANSPORT_WORDS + WORDS) * 8
_OVERFLOW_BASE = -(-_STATE_BYTES // mmap.PAGESIZE) * mmap.PAGESIZE

# A pipe frame's header is the item's size plus one; 0 is a wake-up with no item,
# so an empty item still travels.
_PIPE_FRAME = struct.Struct("!I")
_WAKE = _PIPE_FRAME.pack(0)
_TICKET_BIT = 1 << 31  # in a frame's header: the frame is a large item's ticket
_PIPE_BUF: int = getattr(select, "PIPE_BUF", 512)
_PIPE_PAYLOAD = _PIPE_BUF - _PIPE_FRAME.size
_PIPE_SIZE = 1 << 20  # ask for a larger pipe, so bursts spill less often
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)
_O_TMPFILE: int = getattr(os, "O_TMPFILE", 0)
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
#: The default of ``shm_threshold``: from this size on, a buffer travels through shared
#: memory (``channels bench`` measures the crossover).
SHM_THRESHOLD = 1 << 20


@dataclass(frozen=True)
class Settings:
    """What a local channel was opened with."""

    name: str
    maxsize: int
    serializer: Serializer
    max_message_size: int | None
    #: Whether the pipe is in packet mode: one read returns exactly one write.
    packets: bool
    #: Whether receivers mark items done and senders can join.
    joinable: bool = False
    #: Buffers at least this large travel through shared memory (0: never).
    shm_threshold: int = 0


@dataclass(frozen=True)
class _Fds:
    """The descriptors a local channel is made of; ``room_*`` only when bounded."""

    state: int
    reader: int
    writer: int
    room_reader: int = -1
    room_writer: int = -1
    side_send: int = -1
    side_recv: int = -1

    def every(self) -> tuple[int, ...]:
        return (
            self.state,
            self.reader,
            self.writer,
            self.room_reader,
            self.room_writer,
            self.side_send,
            self.side_recv,
        )

    def all(self) -> list[int]:
        return [fd for fd in self.every() if fd >= 0]


class LocalCore:
    """One local channel's transport and books; see the module docstring."""

    #: Its steps take no lock that is not free when their deadline has passed, and do no
    #: I/O that can stall: an event loop may try them itself (see ``_core.steps_on_loop``).
    steps_on_loop: ClassVar[bool] = True

    __slots__ = (
        "__weakref__",
        "_fds",
        "_first",
        "_handed",
        "_hold_lock",
        "_ledger",
        "_mm",
        "_noted",
        "_noted_pid",
        "_overflow",
        "_packets",
        "_receiving_pid",
        "_rentry",
        "_rfd",
        "_rlock",
        "_settings",
        "_shm",
        "_shm_pid",
        "_wfd",
        "_wlock",
        "_words",
    )

    def __init__(self, fds: _Fds, settings: Settings, first: int) -> None:
        self._fds = fds
        self._settings = settings
        self._rfd, self._wfd = fds.reader, fds.writer
        self._mm = mmap.mmap(fds.state, _STATE_BYTES)
        self._rlock = RobustMutex(self._mm, _RLOCK_AT)
        self._wlock = RobustMutex(self._mm, _WLOCK_AT)
        self._words = memoryview(self._mm)[_WORDS_AT:_STATE_BYTES].cast("q")
        self._ledger = Ledger(self._words[_TRANSPORT_WORDS:])
        self._first = first
        self._packets = settings.packets
        overflow_words = self._words[_OVERFLOW : _OVERFLOW + OVERFLOW_WORDS]
        self._overflow = Overflow(
            overflow_words, self._words, (_W_TORN, _R_TORN), fds.state, _OVERFLOW_BASE
        )
        self._noted: set[int] = set()
        self._noted_pid = 0
        self._receiving_pid = 0
        self._rentry = 0  # this process's receiver entry in the ledger
        self._hold_lock = threading.Lock()  # this process's threads update its held count
        self._shm: Shm | None = None
        self._shm_pid = 0
        self._handed = Handed()  # children being started with a handle
        weakref.finalize(self, _close_all, fds.all())

    @classmethod
    def open(
        cls,
        name: str,
        *,
        maxsize: int = 0,
        context: ContextSpec = None,
        serializer: SerializerSpec = None,
        max_message_size: int | None = None,
        spill_dir: str | None = None,
        joinable: bool = False,
        shm_threshold: int = SHM_THRESHOLD,
    ) -> LocalCore:
        """Check a local backend's options and build a fresh channel.

        Raises ``ChannelError`` (never a bare ``OSError``) when the system is out
        of descriptors, memory or disk, and then leaves nothing open.
        """
        resolve_context(context)  # checked for a clear error; the parts work under any
        size = check_maxsize(maxsize)
        serializer_ = resolve_serializer(serializer)
        limit = check_message_limit(max_message_size)
        if isinstance(shm_threshold, bool) or not isinstance(shm_threshold, int):
            raise ConfigError(f"shm_threshold must be a number of bytes, not {shm_threshold!r}")
        if shm_threshold < 0:
            raise ConfigError(f"shm_threshold must be >= 0 (0: never), not {shm_threshold}")
        opened: list[int] = []
        try:
            state = _state_file(spill_dir, opened)
            os.posix_fallocate(state, 0, _OVERFLOW_BASE)  # no page of the state is a hole
            reader, writer = _pipe(opened)
            packets = _prepare_pipe(reader, writer)
            room = _pipe(opened, blocking=False) if size else (-1, -1)
            side = _side(opened) if shm_threshold else (-1, -1)
            fds = _Fds(state, reader, writer, *room, *side)
            settings = Settings(
                name, size, serializer_, limit, packets, bool(joinable), shm_threshold
            )
            core = cls(fds, settings, 0)
        except OSError as exc:
            _close_all(opened)
            raise ChannelError(f"cannot open a {name} channel: {_os_reason(exc)}") from exc
        core._rlock.initialise()
        core._wlock.initialise()
        core._first = core._ledger.initialise()
        core._overflow.initialise()
        return core

    # -- the Core protocol ---------------------------------------------------------

    @property
    def serializer(self) -> Serializer:
        return self._settings.serializer

    @property
    def max_message_size(self) -> int | None:
        return self._settings.max_message_size

    @property
    def first_token(self) -> int:
        return self._first

    @property
    def shm_threshold(self) -> int:
        return self._settings.shm_threshold

    def sender_open(self, token: int) -> bool:
        return self._ledger.is_open(token)

    def clone(self, token: int) -> int:
        with self._books():
            check_clonable(self._ledger, token)
            return self._ledger.open_handle()

    def close_sender(self, token: int) -> None:
        if self._handed:  # often a starter's last call: name the children it started first
            self._settle()
        if not self._ledger.is_open(token):
            return
        with self._books():
            if self._ledger.close_handle(token):
                self._wake()

    def handing_over(self, token: int) -> None:
        """Under spawn or forkserver, the process being started holds handle ``token``.

        Once its pid is known (``_settle``), it is noted as a sender of that handle,
        so a child that dies at start, before it ever sent, breaks the channel
        like any sender that died without closing.
        """
        self._handed.note(token)

    def _settle(self, deadline: float | None = None) -> None:
        """Note each started child that a handle was handed to (see ``handing_over``).

        ``ChannelTimeout`` if the write lock stays busy until ``deadline``; the
        children are then noted at a later call.
        """
        with self._books(deadline):
            for pid, token in self._handed.started():
                if self._ledger.is_open(token):  # a handle closed since counts no sender
                    self._ledger.note_sender(pid, process_stamp(pid), token, pid_alive)

    def close_receiver(self) -> None:
        if self._receiving_pid == me.pid:
            with self._books():
                self._ledger.forget_receiver(me.pid)
            self._receiving_pid = 0

    # -- the Core protocol: putting, taking, readiness --------------------------------

    def put(self, token: int, items: Sequence[Payload], deadline: float | None) -> int:
        """Put as many of ``items`` as fit now; the write lock is taken once for them all."""
        wlock, ledger, words = self._wlock, self._ledger, self._words
        got = wlock.acquire(deadline)
        if got != 0:
            self._acquired(wlock, got)
        try:
            step = _steps.step
            if step:
                step("send:locked")
            if not ledger.sendable(token):
                check_sendable(ledger, token)
            if self._noted_pid != me.pid or token not in self._noted:
                self._note_sender(token)
            bound = self._settings.maxsize
            if not bound and len(items) == 1:  # the common case, without the loop
                self._put_counted(items[0])
                return 1
            done = 0
            count = len(items)
            batch = count > 1
            while done < count:
                room = bound - (words[_SENT] - words[_RECEIVED]) if bound else count
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
        finally:
            wlock.release()

    def _put_counted(self, payload: Payload, batch: bool = False) -> None:
        """``_put`` one item, then count it sent; or a stored batch (``_put_batch``)."""
        if type(payload) is Batch:  # never on a bounded channel (stores_batches)
            self._put_batch(payload)
            return
        self._put(cast("Data | OutOfBand", payload), batch)
        step = _steps.step
        if step:
            step("send:written")
        self._words[_SENT] += 1
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
        self._words[_SENT] += batch.count
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
            self._words[_SENT] += sent
            if step:
                step("send:counted")
        return sent

    def _note_sender(self, token: int) -> None:
        """Record, once per process and handle, that this process sends on ``token``."""
        if self._noted_pid != me.pid:
            self._noted = set()
            self._noted_pid = me.pid
        self._ledger.note_sender(me.pid, me.stamp, token, pid_alive)
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
        if size <= _PIPE_PAYLOAD and not batch and not self._overflow.pending():
            words = self._words
            if words[_PIPE_DRAINED]:
                words[_PIPE_DRAINED] = 0  # before the item: then the pipe is read first again
            try:
                head = (size + 1) | (_TICKET_BIT if marked else 0)
                os.write(self._wfd, _PIPE_FRAME.pack(head) + data)
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
        what = "no space is left for" if exc.errno in _NO_SPACE else "cannot store"
        raise ChannelError(
            f"{what} the item in the channel's overflow file ({_os_reason(exc)}); nothing was sent"
        ) from exc

    def take(self, max_items: int, deadline: float | None) -> list[Payload]:
        """Take up to ``max_items`` ready items; the read lock is taken once for them all."""
        if self._receiving_pid != me.pid:
            self._note_receiver(deadline)
        if self._handed:
            self._settle(deadline)
        words, ledger, rlock = self._words, self._ledger, self._rlock
        got: list[Payload] = []
        count = 0  # items in got: a part of a stored batch may hold several
        got_lock = rlock.acquire(deadline)
        if got_lock != 0:
            self._acquired(rlock, got_lock)
        try:
            step = _steps.step
            if step:
                step("recv:locked")
            while count < max_items:
                if words[_PIPE_DRAINED] and not ledger.flags & BROKEN:
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
                if data is not _RUN:
                    got.append(data)
                    count += 1
        finally:
            words[_TAKING] = 0
            rlock.release()
        if got and self._settings.maxsize:
            self._made_room(count)
        return got

    def _take_one(self, step: Callable[[str], None] | None) -> Payload | None:
        """One item, pipe first, counted taken; None if none is ready, ``_RUN`` if it is
        the overflow's turn; the caller holds the read lock."""
        words = self._words
        joinable = self._settings.joinable
        if joinable:  # held before taken: a live receiver never holds less than it took
            self._hold(1)
        words[_TAKING] = words[_RECEIVED] + 1
        if step:
            step("recv:taking")
        try:
            data = self._take()
        except (EndOfChannel, ChannelBroken):
            if joinable:
                self._hold(-1)
            raise
        if data is None or data is _RUN:
            if joinable:
                self._hold(-1)
            return data
        if step:
            step("recv:taken")
        words[_RECEIVED] = words[_TAKING]
        if step:
            step("recv:counted")
        return data

    def _made_room(self, taken: int) -> None:
        """After taking ``taken`` items: if the channel was full, wake the waiting senders."""
        words = self._words
        if words[_SENT] - words[_RECEIVED] + taken >= self._settings.maxsize:
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
        taking = words[_TAKING] = words[_RECEIVED] + count
        if step:
            step("recv:taking")
        overflow.take_to(upto, split)
        if step:
            step("recv:taken")
        words[_RECEIVED] = taking
        if step:
            step("recv:counted")
        if not overflow.pending():
            self._overflow_drained()
        return items, count

    def ready_fd(self, sending: bool) -> int | None:
        """The pipe for receivers; the room pipe for senders of a bounded channel."""
        if not sending:
            return self._rfd
        room = self._fds.room_reader
        return room if room >= 0 else None

    def wait(self, sending: bool, timeout: float) -> None:
        """Wait for the pipe (or the room pipe) up to one poll slice; after an idle
        slice, look for dead peers. It takes no lock that is not free, so with a
        ``timeout`` of 0 it never blocks."""
        if self._handed:
            with contextlib.suppress(ChannelTimeout):  # busy: the next wait notes them
                self._settle(time.monotonic() + timeout)
        fd = self._rfd if not sending else self._fds.room_reader
        if fd < 0:  # an unbounded channel always has room
            return
        if self._poll(fd, min(timeout, POLL_SLICE)):
            if sending:
                with contextlib.suppress(BlockingIOError):
                    os.read(fd, 1 << 16)
            return
        self._look_for_dead(receivers=sending)

    def stats(self) -> ChannelStats:
        words, ledger = self._words, self._ledger
        sent, received = words[_SENT], words[_RECEIVED]
        flags = ledger.flags
        return ChannelStats(
            waiting=max(0, sent - received),
            senders=ledger.open_handles,
            receivers=ledger.receiver_count(pid_alive),
            sent=sent,
            received=received,
            unfinished=max(0, sent - words[_DONE]) if self._settings.joinable else 0,
            ended=bool(flags & ENDED),
            broken=bool(flags & BROKEN),
        )

    def task_done(self) -> None:
        if not self._settings.joinable:
            not_joinable("task_done()")
        if self._receiving_pid != me.pid:
            nothing_to_mark()
        with self._books(), self._hold_lock:
            if not self._ledger.holding(self._rentry):
                nothing_to_mark()
            self._words[_DONE] += 1  # done before unheld, as for taking
            self._ledger.hold(self._rentry, -1)

    def unfinished(self) -> int:
        if not self._settings.joinable:
            not_joinable("join()")
        words = self._words
        if words[_SENT] - words[_DONE] <= 0:
            return 0
        # Both locks: no receiver is between taking and holding, or marking and unholding.
        self._take_lock(self._rlock, None)
        try:
            with self._books():
                held = words[_RECEIVED] - words[_DONE]
                lost = held - self._ledger.held_by_the_living(pid_alive)
                if lost > 0:
                    lost_unfinished(lost)
                return max(0, words[_SENT] - words[_DONE])
        finally:
            self._rlock.release()

    def _poll(self, fd: int, timeout: float) -> bool:
        """Whether ``fd`` turned readable within ``timeout``; a poller of its own for each
        call, so that any number of threads may wait at once."""
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))

    def _room(self) -> None:
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(self._fds.room_writer, b"\0")

    def _ship(self, payload: OutOfBand) -> tuple[bytes, bool]:
        """Put a large item's buffers in shared memory: its ticket, and True.

        Where shared memory or the side socket is full, the item goes in band
        instead (its bytes, and False), so a send never fails for want of it.
        """
        words = self._words
        number = words[_TICKETS] + 1
        try:
            ticket = self._side().ship(number, payload)
        except OSError:
            return in_band(payload), False
        words[_TICKETS] = number
        if _steps.step:
            _steps.step("shm:shipped")
        return ticket, True

    def _redeem(self, ticket: Data) -> OutOfBand:
        if _steps.step:
            _steps.step("shm:redeeming")
        return self._side().redeem(ticket)

    def _side(self) -> Shm:
        if self._shm is None or self._shm_pid != me.pid:
            fds = self._fds
            self._shm = Shm(fds.side_send, fds.side_recv)
            self._shm_pid = me.pid
            weakref.finalize(self, self._shm.close)
        return self._shm

    def _wake(self) -> None:
        """Wake a receiver waiting on the pipe; a full pipe needs no waking."""
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(self._wfd, _WAKE)

    def _check_sendable(self, token: int) -> None:
        check_sendable(self._ledger, token)

    # -- receiving -----------------------------------------------------------------

    def _take(self) -> Payload | None:
        """The next item, or None, or ``_RUN`` when the overflow's turn has just come;
        the caller holds the read lock."""
        words = self._words
        ledger = self._ledger
        overflow = self._overflow
        while True:
            flags = ledger.flags
            if flags & BROKEN and ledger.broken_why == BROKEN_TORN:
                raise ChannelBroken(ledger.broken_reason)
            # The overflow only ever holds items newer than the pipe's, so it is
            # read only once the pipe was seen empty *after* the overflow had items.
            pending = overflow.pending()
            if not (pending and words[_PIPE_DRAINED]):
                data = self._read_pipe()
                if data is not None:
                    return data
                if pending:
                    words[_PIPE_DRAINED] = 1
                    # No reader reads the pipe again until the overflow drains: a wake-up
                    # left in it keeps every waiting receiver awake while items remain.
                    self._wake()
                    return _RUN  # the overflow's turn: take a run of it, not one item
            if pending:
                data = self._from_overflow()
                if data is not None:
                    return data
                continue
            if overflow.pending():
                continue  # the overflow filled after we looked: the pipe may hold older items
            if _steps.step:
                _steps.step("recv:empty")
            nothing_left(ledger, flags)  # as read before looking: see nothing_left
            return None

    def _read_pipe(self) -> Payload | None:
        """Take one item from the pipe, or None if it holds none (wake-ups are skipped)."""
        fd = self._rfd
        while True:
            try:
                if self._packets:  # one read is one whole frame: nothing can tear it
                    frame = os.read(fd, _PIPE_BUF)
                    head = frame[: _PIPE_FRAME.size]
                else:
                    frame = head = os.read(fd, _PIPE_FRAME.size)
            except BlockingIOError:
                return None
            if len(head) != _PIPE_FRAME.size:
                self._tear(f"a frame header of {len(head)} bytes")
            (size,) = _PIPE_FRAME.unpack(head)
            if size == 0:
                continue
            marked = size & _TICKET_BIT
            size = (size & ~_TICKET_BIT) - 1
            if size > _PIPE_PAYLOAD:
                self._tear(f"a pipe frame claiming {size} bytes")
            data: Data
            if not self._packets:
                data = self._read_payload(fd, size)
            elif len(frame) != _PIPE_FRAME.size + size:
                self._tear(f"a frame of {len(frame)} bytes claiming {size}")
            else:
                data = memoryview(frame)[_PIPE_FRAME.size : _PIPE_FRAME.size + size]
            return self._redeem(data) if marked else data

    def _read_payload(self, fd: int, size: int) -> bytes:
        """The second read of a frame, where the pipe has no packet mode."""
        words = self._words
        words[_R_TORN] = 1
        try:
            data = os.read(fd, size) if size else b""
        except BlockingIOError:
            data = b""
        if len(data) != size:
            self._tear(f"{len(data)} of {size} bytes of an item")
        words[_R_TORN] = 0
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
        to write an item there clears ``_PIPE_DRAINED``."""
        overflow = self._overflow
        if overflow.needs_rewind() and self._try_lock(self._wlock):
            try:
                overflow.rewind()
            finally:
                self._wlock.release()

    def _note_receiver(self, deadline: float | None) -> None:
        with self._books(deadline):
            self._rentry = self._ledger.note_receiver(me.pid, me.stamp, pid_alive)
        self._receiving_pid = me.pid

    # -- locks, and repairing after a holder died ------------------------------------

    def _take_lock(self, lock: RobustMutex, deadline: float | None) -> None:
        got = lock.acquire(deadline)
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
        if words[_W_TORN]:
            ledger.mark_broken(BROKEN_TORN)
            self._wake()
            words[_W_TORN] = 0

    def _recover_reader(self) -> None:
        words = self._words
        taking = words[_TAKING]
        if taking:
            # The dead reader may or may not have taken its item: count it taken, so a
            # bounded channel errs towards one more item of room, never one less.
            words[_RECEIVED] = max(words[_RECEIVED], taking)
            words[_TAKING] = 0
        if words[_R_TORN]:
            with self._books():
                self._ledger.mark_broken(BROKEN_TORN)
            words[_R_TORN] = 0
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
            self._ledger.mark_broken(BROKEN_TORN)
        self._words[_R_TORN] = 0
        raise ChannelBroken(f"{WHY[BROKEN_TORN]} (read {what})")

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
                    ledger.mark_broken(BROKEN_RECEIVERS_GONE)
                    self._room()
            elif ledger.senders_gone(pid_alive):
                ledger.mark_broken(BROKEN_SENDERS_GONE)
                self._wake()
        finally:
            self._wlock.release()

    # -- life cycle ----------------------------------------------------------------

    def __reduce__(self) -> tuple[object, ...]:
        if get_spawning_popen() is None:
            raise ChannelError(
                f"a {self._settings.name} channel can be given to a child process only as an "
                "argument when it starts (multiprocessing.Process(args=...)); to share a channel "
                "with processes that are already running, use the manager backend"
            )
        dup = [reduction.DupFd(fd) if fd >= 0 else None for fd in self._fds.every()]
        return (_rebuild, (dup, self._settings, self._first))

    def __repr__(self) -> str:
        bound = f" maxsize={self._settings.maxsize}" if self._settings.maxsize else ""
        return f"{self._settings.name}{bound}"


class _Detachable(Protocol):
    def detach(self) -> int: ...


def _rebuild(dup: list[_Detachable | None], settings: Settings, first: int) -> LocalCore:
    fds = [d.detach() if d is not None else -1 for d in dup]
    return LocalCore(_Fds(*fds), settings, first)


def _state_file(folder: str | None, opened: list[int]) -> int:
    """A new file with no name (``O_TMPFILE``), so no death can leave it behind."""
    folder = folder or tempfile.gettempdir()
    if _O_TMPFILE:
        try:
            fd = os.open(folder, _O_TMPFILE | os.O_RDWR, 0o600)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
        else:
            opened.append(fd)
            return fd
    fd, path = tempfile.mkstemp(prefix="channel-", dir=folder)
    opened.append(fd)
    os.unlink(path)
    return fd


def _side(opened: list[int]) -> tuple[int, int]:
    send, recv = side_pair()
    opened += (send, recv)
    return send, recv


def _pipe(opened: list[int], *, blocking: bool = True) -> tuple[int, int]:
    reader, writer = os.pipe()
    opened += (reader, writer)
    if not blocking:  # several processes read it: poll may promise a byte another one takes
        os.set_blocking(reader, False)
        os.set_blocking(writer, False)
    return reader, writer


def _prepare_pipe(reader: int, writer: int) -> bool:
    """Make both ends non-blocking, ask for a larger pipe and for packet mode.

    Returns whether packet mode (Linux's ``O_DIRECT`` pipes) is on: then each
    write of at most ``PIPE_BUF`` bytes is read back whole by one read.
    """
    packets = bool(_O_DIRECT)
    for fd in (reader, writer):
        os.set_blocking(fd, False)
        if packets:
            try:
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | _O_DIRECT)
            except OSError:
                packets = False
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    return packets


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.EMFILE:
        return "this process has too many open files (raise its limit with ulimit -n)"
    if exc.errno == errno.ENFILE:
        return "the system has too many open files"
    if exc.errno in _NO_SPACE:
        return f"no space left on the device ({exc.strerror})"
    return exc.strerror or str(exc)


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
