"""The core of the local backends: a pipe, two locks, an optional slot semaphore.

These are the parts ``multiprocessing.Queue`` is made of, driven synchronously:
there is no feeder thread, so when ``send`` returns the item is out of the
sender's memory and a crash right after loses nothing.

Items travel through the OS pipe when a frame fits in one atomic write
(``PIPE_BUF``) and the pipe has room. Otherwise they go to an overflow file
shared by every process (unlinked at once, so nothing is left behind), so an
unbounded channel never makes ``send`` wait, however slow the receivers. While
the overflow holds items every new item goes there too, and receivers empty the
pipe before the overflow, so the order is kept.

The first pages of that file hold the channel's ``Ledger`` (see ``_ledger``) and
a few transport words: who holds each lock, whether a reader is in the middle
of an item, and the overflow's offsets. A process that dies holding a lock is
noticed by the next waiter, which takes the lock over; if it died halfway
through reading an item, the channel is marked broken instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import select
import struct
import tempfile
import weakref
from collections.abc import Generator
from dataclasses import dataclass
from multiprocessing import reduction
from multiprocessing.connection import Connection
from multiprocessing.context import get_spawning_popen
from multiprocessing.synchronize import BoundedSemaphore, Lock
from typing import NoReturn, Protocol

from ..._config import ContextSpec, SerializerSpec, check_maxsize, check_message_limit, lock_context
from ..._core import remaining
from ..._errors import (
    ChannelBroken,
    ChannelClosed,
    ChannelError,
    ChannelTimeout,
    EndOfChannel,
    WouldBlock,
)
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
from ..._liveness import me, pid_alive
from ..._serialize import Serializer, resolve_serializer
from .overflow import WORDS as OVERFLOW_WORDS
from .overflow import Overflow

__all__ = ["LocalCore", "Primitives", "Settings"]

# Transport words, before the ledger. _CRITICAL holds the pid of a process in
# the middle of an update spanning several words (or of a two-read frame), so a
# waiter taking over the lock of a process that died there knows the state is
# torn. _PIPE_DRAINED says a reader found the pipe empty while the overflow held
# items: until the overflow drains, no item enters the pipe.
_WRITER, _WRITER_STAMP, _READER, _READER_STAMP, _CRITICAL, _PIPE_DRAINED = range(6)
_OVERFLOW = 8  # the overflow's words follow
_TRANSPORT_WORDS = _OVERFLOW + OVERFLOW_WORDS
_STATE_BYTES = (_TRANSPORT_WORDS + WORDS) * 8
_OVERFLOW_BASE = -(-_STATE_BYTES // mmap.PAGESIZE) * mmap.PAGESIZE

_PIPE_FRAME = struct.Struct("!I")
_WAKE = _PIPE_FRAME.pack(0)  # an empty frame: "look again", carries no item
_PIPE_BUF: int = getattr(select, "PIPE_BUF", 512)
_PIPE_PAYLOAD = _PIPE_BUF - _PIPE_FRAME.size
_PIPE_SIZE = 1 << 20  # ask for a larger pipe, so bursts spill less often
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)


@dataclass(frozen=True)
class Primitives:
    """The multiprocessing parts a local channel is made of."""

    reader: Connection
    writer: Connection
    rlock: Lock
    wlock: Lock
    slots: BoundedSemaphore | None


@dataclass(frozen=True)
class Settings:
    """What a local channel was opened with."""

    name: str
    maxsize: int
    serializer: Serializer
    max_message_size: int | None
    #: Whether the pipe is in packet mode: one read returns exactly one write.
    packets: bool


class LocalCore:
    """One local channel's transport and books; see the module docstring."""

    __slots__ = (
        "__weakref__",
        "_file",
        "_first",
        "_ledger",
        "_mm",
        "_noted",
        "_noted_pid",
        "_overflow",
        "_packets",
        "_parts",
        "_poller",
        "_poller_pid",
        "_receiving_pid",
        "_rfd",
        "_rlock",
        "_settings",
        "_slots",
        "_wfd",
        "_wlock",
        "_words",
    )

    def __init__(self, parts: Primitives, settings: Settings, file_fd: int, first: int) -> None:
        self._parts = parts
        self._settings = settings
        self._rfd, self._wfd = parts.reader.fileno(), parts.writer.fileno()
        self._rlock, self._wlock, self._slots = parts.rlock, parts.wlock, parts.slots
        self._file = file_fd
        self._mm = mmap.mmap(file_fd, _STATE_BYTES)
        self._words = memoryview(self._mm).cast("q")
        self._ledger = Ledger(self._words[_TRANSPORT_WORDS:])
        self._first = first
        self._packets = settings.packets
        overflow_words = self._words[_OVERFLOW : _OVERFLOW + OVERFLOW_WORDS]
        self._overflow = Overflow(overflow_words, self._words, _CRITICAL, file_fd, _OVERFLOW_BASE)
        self._noted: set[int] = set()
        self._noted_pid = 0
        self._receiving_pid = 0
        self._poller: select.poll | None = None
        self._poller_pid = 0
        weakref.finalize(self, _release, file_fd, parts.reader, parts.writer)

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
    ) -> LocalCore:
        """Check a local backend's options, build its primitives and a fresh channel."""
        ctx = lock_context(context)
        size = check_maxsize(maxsize)
        serializer_ = resolve_serializer(serializer)
        limit = check_message_limit(max_message_size)
        reader, writer = ctx.Pipe(duplex=False)
        slots = ctx.BoundedSemaphore(size) if size else None
        parts = Primitives(reader, writer, ctx.Lock(), ctx.Lock(), slots)
        settings = Settings(name, size, serializer_, limit, _prepare_pipe(reader, writer))
        try:
            fd, path = tempfile.mkstemp(prefix="channel-", dir=spill_dir)
        except OSError as exc:
            raise ChannelError(f"cannot create the channel's overflow file: {exc}") from exc
        os.unlink(path)
        os.ftruncate(fd, _OVERFLOW_BASE)
        core = cls(parts, settings, fd, 0)
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

    def sender_open(self, token: int) -> bool:
        return self._ledger.is_open(token)

    def send(
        self, token: int, data: bytes | memoryview, deadline: float | None, block: bool
    ) -> None:
        slots = self._slots
        if slots is None:
            self._write(token, data, deadline)
            return
        if not slots.acquire(False):
            if not block:
                self._check_sendable(token)
                raise WouldBlock("the channel is full")
            self._wait_for_slot(slots, token, deadline)
        written = False
        try:
            self._write(token, data, deadline)
            written = True
        finally:
            if not written:
                slots.release()

    def recv(self, deadline: float | None, block: bool) -> bytes | memoryview:
        wait = block or bool(self._ledger.flags & ENDED)
        if not self._hold(self._rlock, _READER, deadline, wait):
            raise WouldBlock("another receiver is taking an item")
        data: bytes | memoryview | None = None
        try:
            if self._receiving_pid != me.pid:
                self._note_receiver()
            data = self._take(deadline, block)
            return data
        finally:
            self._let_go(self._rlock, _READER)
            if data is not None and self._slots is not None:
                self._slots.release()

    def clone(self, token: int) -> int:
        with self._books():
            if not self._ledger.is_open(token):
                raise ChannelClosed("cannot clone a closed sender handle")
            return self._ledger.open_handle()

    def close_sender(self, token: int) -> None:
        if not self._ledger.is_open(token):
            return
        with self._books():
            if self._ledger.close_handle(token):
                self._wake()

    def close_receiver(self) -> None:
        if self._receiving_pid == me.pid:
            with self._books():
                self._ledger.forget_receiver(me.pid)
            self._receiving_pid = 0

    # -- sending -------------------------------------------------------------------

    def _write(self, token: int, data: bytes | memoryview, deadline: float | None) -> None:
        self._hold(self._wlock, _WRITER, deadline)
        try:
            ledger = self._ledger
            if not ledger.is_open(token):
                raise ChannelClosed("this sender handle is closed")
            if ledger.flags & BROKEN:
                raise ChannelBroken(ledger.broken_reason)
            if self._noted_pid != me.pid:
                self._noted = set()
                self._noted_pid = me.pid
            if token not in self._noted:
                ledger.note_sender(me.pid, me.stamp, token, pid_alive)
                self._noted.add(token)
            size = len(data)
            if size <= _PIPE_PAYLOAD and not self._overflow.pending():
                try:
                    os.write(self._wfd, _PIPE_FRAME.pack(size) + data)
                    return
                except BlockingIOError:
                    pass
                except BrokenPipeError as exc:
                    raise ChannelBroken("every receiving end of the channel is closed") from exc
            try:
                if self._overflow.append(data):
                    self._wake()
            except OSError as exc:
                raise ChannelError(
                    f"the channel's overflow file cannot take the item: {exc}"
                ) from exc
        finally:
            self._let_go(self._wlock, _WRITER)

    def _wake(self) -> None:
        """Wake a receiver waiting on the pipe; a full pipe needs no waking."""
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(self._wfd, _WAKE)

    def _wait_for_slot(self, slots: BoundedSemaphore, token: int, deadline: float | None) -> None:
        while True:
            self._check_sendable(token)
            wait = remaining(deadline)
            if wait <= 0 and deadline is not None:
                raise ChannelTimeout("the channel stayed full until the timeout")
            if slots.acquire(timeout=wait):
                return
            self._look_for_dead(receivers=True)

    def _check_sendable(self, token: int) -> None:
        ledger = self._ledger
        if not ledger.is_open(token):
            raise ChannelClosed("this sender handle is closed")
        if ledger.flags & BROKEN:
            raise ChannelBroken(ledger.broken_reason)

    # -- receiving -----------------------------------------------------------------

    def _take(self, deadline: float | None, block: bool) -> bytes | memoryview:
        """Return the next item; the caller holds the read lock."""
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
            if pending:
                data = self._from_overflow()
                if data is not None:
                    return data
                continue
            if overflow.pending():
                continue  # the overflow filled after we looked: the pipe may hold older items
            if flags & ENDED:
                raise EndOfChannel("every sender closed and the channel is drained")
            if flags & BROKEN:
                raise ChannelBroken(ledger.broken_reason)
            if not block:
                raise WouldBlock("no item is ready")
            wait = remaining(deadline)
            if wait <= 0 and deadline is not None:
                raise ChannelTimeout("no item arrived before the timeout")
            if not self._readable(wait):
                self._look_for_dead(receivers=False)

    def _read_pipe(self) -> bytes | memoryview | None:
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
            if size > _PIPE_PAYLOAD:
                self._tear(f"a pipe frame claiming {size} bytes")
            if not self._packets:
                return self._read_payload(fd, size)
            if len(frame) != _PIPE_FRAME.size + size:
                self._tear(f"a frame of {len(frame)} bytes claiming {size}")
            return memoryview(frame)[_PIPE_FRAME.size :]

    def _read_payload(self, fd: int, size: int) -> bytes:
        """The second read of a frame, where the pipe has no packet mode."""
        words = self._words
        words[_CRITICAL] = me.pid
        try:
            data = os.read(fd, size)
        except BlockingIOError:
            data = b""
        if len(data) != size:
            self._tear(f"{len(data)} of {size} bytes of an item")
        words[_CRITICAL] = 0
        return data

    def _from_overflow(self) -> bytes | memoryview | None:
        """Take the oldest overflow item; compact the overflow once it is drained."""
        overflow = self._overflow
        data = overflow.take()
        if data is None or not overflow.pending():
            self._words[_PIPE_DRAINED] = 0  # writers may use the pipe again from now on
            if overflow.needs_rewind() and self._hold(self._wlock, _WRITER, None, wait=False):
                try:
                    overflow.rewind()
                finally:
                    self._let_go(self._wlock, _WRITER)
        return data

    def _readable(self, wait: float) -> bool:
        if self._poller_pid != me.pid or self._poller is None:
            self._poller = select.poll()
            self._poller.register(self._rfd, select.POLLIN)
            self._poller_pid = me.pid
        return bool(self._poller.poll(wait * 1000))

    def _note_receiver(self) -> None:
        with self._books():
            self._ledger.note_receiver(me.pid, me.stamp, pid_alive)
        self._receiving_pid = me.pid

    # -- failures ------------------------------------------------------------------

    def _tear(self, what: str) -> NoReturn:
        self._words[_CRITICAL] = 0
        with self._books():
            self._ledger.mark_broken(BROKEN_TORN)
        raise ChannelBroken(f"{WHY[BROKEN_TORN]} (read {what})")

    def _look_for_dead(self, *, receivers: bool) -> None:
        """After an idle wait: mark the channel broken if the peers it waits for are all dead."""
        ledger = self._ledger
        if ledger.flags & (ENDED | BROKEN):
            return
        if not self._hold(self._wlock, _WRITER, None, wait=False):
            self._take_over_if_orphaned(self._wlock, _WRITER)
            return
        try:
            if receivers:
                if ledger.receivers_gone(pid_alive):
                    ledger.mark_broken(BROKEN_RECEIVERS_GONE)
            elif ledger.senders_gone(pid_alive):
                ledger.mark_broken(BROKEN_SENDERS_GONE)
        finally:
            self._let_go(self._wlock, _WRITER)

    def _acquire(self, lock: Lock, owner: int, deadline: float | None) -> None:
        """Take ``lock``, waking every slice to take it over from a dead holder."""
        while True:
            wait = remaining(deadline)
            if wait <= 0 and deadline is not None:
                if lock.acquire(False):
                    return
                raise ChannelTimeout("the channel stayed busy until the timeout")
            if lock.acquire(timeout=wait):
                return
            self._take_over_if_orphaned(lock, owner)

    def _take_over_if_orphaned(self, lock: Lock, owner: int) -> None:
        words = self._words
        pid = words[owner]
        if not pid or pid == me.pid or pid_alive(pid, words[owner + 1]):
            return
        if words[_CRITICAL] == pid:
            self._ledger.mark_broken(BROKEN_TORN)
        if words[owner] == pid:
            words[owner] = 0
            words[_CRITICAL] = 0
            with contextlib.suppress(ValueError):  # another waiter took it over first
                lock.release()

    def _hold(self, lock: Lock, owner: int, deadline: float | None, wait: bool = True) -> bool:
        """Take ``lock`` and record this process as its holder; False if busy and not ``wait``."""
        if not lock.acquire(False):
            if not wait:
                return False
            self._acquire(lock, owner, deadline)
        words = self._words
        words[owner] = me.pid
        words[owner + 1] = me.stamp
        return True

    def _let_go(self, lock: Lock, owner: int) -> None:
        self._words[owner] = 0
        lock.release()

    @contextlib.contextmanager
    def _books(self) -> Generator[None]:
        """Hold the write lock, which also orders every change to the ledger."""
        self._hold(self._wlock, _WRITER, None)
        try:
            yield
        finally:
            self._let_go(self._wlock, _WRITER)

    # -- life cycle ----------------------------------------------------------------

    def __reduce__(self) -> tuple[object, ...]:
        if get_spawning_popen() is None:
            raise ChannelError(
                f"a {self._settings.name} channel can be given to a child process only as an "
                "argument when it starts (multiprocessing.Process(args=...)); to share a channel "
                "with processes that are already running, use the manager backend"
            )
        return (_rebuild, (self._parts, self._settings, reduction.DupFd(self._file), self._first))

    def __repr__(self) -> str:
        bound = f" maxsize={self._settings.maxsize}" if self._settings.maxsize else ""
        return f"{self._settings.name}{bound}"


def _rebuild(parts: Primitives, settings: Settings, file_fd: _Detachable, first: int) -> LocalCore:
    return LocalCore(parts, settings, file_fd.detach(), first)


class _Detachable(Protocol):
    def detach(self) -> int: ...


def _prepare_pipe(reader: Connection, writer: Connection) -> bool:
    """Make both ends non-blocking, ask for a larger pipe and for packet mode.

    Returns whether packet mode (Linux's ``O_DIRECT`` pipes) is on: then each
    write of at most ``PIPE_BUF`` bytes is read back whole by one read.
    """
    packets = bool(_O_DIRECT)
    for fd in (reader.fileno(), writer.fileno()):
        os.set_blocking(fd, False)
        if packets:
            try:
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | _O_DIRECT)
            except OSError:
                packets = False
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(writer.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    return packets


def _release(file_fd: int, reader: Connection, writer: Connection) -> None:
    os.close(file_fd)
    reader.close()
    writer.close()
