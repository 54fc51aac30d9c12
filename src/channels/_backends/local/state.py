"""The state page of a local channel, and one process's view of it.

The page holds the two robust mutexes, the transport words (named here) and the
ledger; the overflow's rings follow it in the same file. ``Base`` maps it and
holds what every part of ``LocalCore`` shares, with the few system calls they
all make: waking receivers, waking full senders, polling.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
import struct
import threading
import weakref
from dataclasses import dataclass

from ..._codec.serializers import Serializer
from ..._engine.ledger import (
    FLAGS_WORD,
    WORDS,
    Ledger,
)
from ..._process.handover import Handed
from ..._process.per_process import PerProcess
from ..._process.robust_lock import MUTEX_BYTES, RobustMutex
from .opening import close_all
from .overflow import TOTALS as OVERFLOW_TOTALS
from .overflow import WORDS as OVERFLOW_WORDS
from .overflow import Overflow
from .shm import Shm

# The state page: the two mutexes, then 64-bit words.
RLOCK_AT, WLOCK_AT, WORDS_AT = 0, MUTEX_BYTES, 4 * MUTEX_BYTES
# Transport words. W_TORN / R_TORN: the overflow is in the middle of an update
# spanning several words, under the write / read lock. PIPE_DRAINED: a reader
# found the pipe empty while the overflow held items, so the pipe holds no item
# older than the overflow's; a writer clears it before it next writes an item to
# the pipe (which it does only while the overflow is empty). TAKING: a reader
# is between taking an item and counting it, and this is the count to reach.
# DONE: items marked done (joinable channels). TICKETS: the number of the last
# large item's ticket (see shm).
W_TORN, R_TORN, PIPE_DRAINED, SENT, RECEIVED, TAKING, DONE, TICKETS = range(8)
OVERFLOW = 8  # the overflow's words follow
RUN = b"<the overflow's turn>"  # from _take: no item, take a run of the overflow
TRANSPORT_WORDS = OVERFLOW + OVERFLOW_WORDS
# Words the per-item paths read straight: the ledger's flags, the overflow's totals.
FLAGS = TRANSPORT_WORDS + FLAGS_WORD
OVERFLOW_WRITTEN, OVERFLOW_READ = (OVERFLOW + at for at in OVERFLOW_TOTALS)
STATE_BYTES = WORDS_AT + (TRANSPORT_WORDS + WORDS) * 8
OVERFLOW_BASE = -(-STATE_BYTES // mmap.PAGESIZE) * mmap.PAGESIZE

# A pipe frame's header is the item's size plus one; 0 is a wake-up with no item,
# so an empty item still travels.
PIPE_FRAME = struct.Struct("!I")
WAKE = PIPE_FRAME.pack(0)
TICKET_BIT = 1 << 31  # in a frame's header: the frame is a large item's ticket
PIPE_BUF: int = getattr(select, "PIPE_BUF", 512)
PIPE_PAYLOAD = PIPE_BUF - PIPE_FRAME.size


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
class Fds:
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


class Base:
    """What a local channel's parts share: its descriptors, settings and state page."""

    __slots__ = (
        "__weakref__",
        "_fds",
        "_first",
        "_handed",
        "_hold_lock",
        "_joinable",
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
        "_rtry",
        "_runlock",
        "_sending",
        "_settings",
        "_shm",
        "_slot_at",
        "_slot_open",
        "_unbounded",
        "_wfd",
        "_wlock",
        "_words",
        "_wtry",
        "_wunlock",
    )

    def __init__(self, fds: Fds, settings: Settings, first: int) -> None:
        self._fds = fds
        self._settings = settings
        self._rfd, self._wfd = fds.reader, fds.writer
        self._mm = mmap.mmap(fds.state, STATE_BYTES)
        self._rlock = RobustMutex(self._mm, RLOCK_AT)
        self._wlock = RobustMutex(self._mm, WLOCK_AT)
        self._rtry, self._runlock = self._rlock.try_now, self._rlock.unlock_now
        self._wtry, self._wunlock = self._wlock.try_now, self._wlock.unlock_now
        self._unbounded = not settings.maxsize
        self._joinable = settings.joinable
        # The handle this process last sent on, checked and noted (``Sending``): its
        # slot's word and the value it holds while the handle is open.
        self._sending = -1  # no token is negative
        self._slot_at = self._slot_open = -1
        self._words = memoryview(self._mm)[WORDS_AT:STATE_BYTES].cast("q")
        self._ledger = Ledger(self._words[TRANSPORT_WORDS:])
        self._first = first
        self._packets = settings.packets
        overflow_words = self._words[OVERFLOW : OVERFLOW + OVERFLOW_WORDS]
        self._overflow = Overflow(
            overflow_words, self._words, (W_TORN, R_TORN), fds.state, OVERFLOW_BASE
        )
        self._noted: set[int] = set()
        self._noted_pid = 0
        self._receiving_pid = 0
        self._rentry = 0  # this process's receiver entry in the ledger
        self._hold_lock = threading.Lock()  # this process's threads update its held count
        self._shm: PerProcess[Shm] = PerProcess()
        self._handed = Handed()  # children being started with a handle
        weakref.finalize(self, close_all, fds.all())

    def _poll(self, fd: int, timeout: float) -> bool:
        """Whether ``fd`` turned readable within ``timeout``; a poller of its own for each
        call, so that any number of threads may wait at once."""
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))

    def _room(self) -> None:
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(self._fds.room_writer, b"\0")

    def _side(self) -> Shm:
        return self._shm.get(self._new_side)

    def _new_side(self) -> Shm:
        shm = Shm(self._fds.side_send, self._fds.side_recv)
        weakref.finalize(self, shm.close)
        return shm

    def _wake(self) -> None:
        """Wake a receiver waiting on the pipe; a full pipe needs no waking."""
        try:  # noqa: SIM105 (contextlib.suppress costs more, and a batch makes this call each time)
            os.write(self._wfd, WAKE)
        except (BlockingIOError, BrokenPipeError):
            pass
