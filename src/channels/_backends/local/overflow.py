"""The overflow of a local channel: a ring of frames in a file its processes share.

Items the pipe cannot take at once are appended here. A frame is an 8-byte
length and the item's bytes. Two markers steer readers: SKIP (the rest of the
ring is padding: go back to its start) and JUMP (the ring was full: go on in a
larger ring further down the file). The file thus stays about as large as the
largest backlog, and its pages are written again rather than allocated anew.

Each side keeps a running total of the bytes it has passed; positions within a
ring follow from the totals, so the writer commits an item, and a reader takes
one, with a single store each. Bytes below the write total never change until a
reader has passed them, so a reader may cache what it reads ahead; the lap
counter, bumped whenever a reader wraps, jumps or the ring is rebuilt, tells
when such a cache is stale. Callers hold the channel's write lock to append and
its read lock to take.

Only a jump to a larger ring, a reader following one, and a rewind change
several words at once; each sets its side's torn marker first and clears it
last, so a lock's next holder, after its holder died, knows the ring is torn.
Every write is checked: a full disk raises ``OSError`` before the item is
committed, and leaves the ring as it was.
"""

from __future__ import annotations

import errno
import os
import struct

from ... import _steps
from ..._errors import ChannelBroken
from ..._ledger import BROKEN_TORN, WHY, Words

__all__ = ["Overflow"]

_FRAME = struct.Struct("!Q")
_JUMP_TO = struct.Struct("!QQ")  # where the next ring starts, and its size
_SKIP = 1 << 63
_JUMP = 1 << 62
_MARK = 1 << 61  # the frame holds a ticket for a large item (see shm), not an item
_JUMP_SIZE = _FRAME.size + _JUMP_TO.size
_SLACK = 32  # room always kept free, so a marker fits wherever the writer stands
_FIRST_RING = 1 << 20
_SHRINK_ABOVE = 64 << 20  # a drained ring larger than this starts small again
_READ_AHEAD = 64 << 10
_MAX_IO = 0x7FFFF000  # the most Linux moves in one read or write call

# Word offsets from the overflow's first word.
_W_TOTAL, _R_TOTAL, _W_AT, _W_CAP, _W_T0, _R_AT, _R_CAP, _R_T0, _LAP, _END = range(10)
WORDS = 10


class Overflow:
    """The overflow ring of one channel, as seen from one process."""

    __slots__ = (
        "_base",
        "_cache",
        "_cache_at",
        "_cache_lap",
        "_fd",
        "_marks",
        "_r_torn",
        "_w",
        "_w_torn",
        "marked",
    )

    def __init__(
        self, words: Words, marks: Words, torn: tuple[int, int], fd: int, base: int
    ) -> None:
        self._w = words  # the overflow's own words, indexed from 0
        # marks[w_torn] / marks[r_torn]: the writer's / reader's update spanning several words
        self._marks = marks
        self._w_torn, self._r_torn = torn
        self._fd = fd
        self._base = base
        # Bytes read ahead from ring position _cache_at during lap _cache_lap: they
        # depend only on the file, so they stay good in any process until the lap moves.
        self._cache = b""
        self._cache_at = 0
        self._cache_lap = -1
        #: Whether the frame ``take`` returned last was appended ``marked``.
        self.marked = False

    def initialise(self) -> None:
        """Lay out an empty first ring (in a new channel)."""
        w = self._w
        for at_word, cap_word in ((_W_AT, _W_CAP), (_R_AT, _R_CAP)):
            w[at_word] = 0
            w[cap_word] = _FIRST_RING
        w[_END] = _FIRST_RING

    def pending(self) -> bool:
        """Whether the overflow holds anything a reader has not passed yet."""
        w = self._w
        return w[_W_TOTAL] != w[_R_TOTAL]

    # -- writing (under the write lock) ------------------------------------------------

    def append(self, data: bytes | memoryview, marked: bool = False) -> bool:
        """Append one item (``marked``: a ticket); return whether the overflow was empty."""
        w = self._w
        total, read = w[_W_TOTAL], w[_R_TOTAL]
        at, cap, start = w[_W_AT], w[_W_CAP], w[_W_T0]
        size = len(data)
        need = _FRAME.size + size
        pos = at + (total - start) % cap
        unread = total - (read if read > start else start)
        tail = at + cap - pos
        if need + _SLACK <= tail and unread + need + _SLACK <= cap and size <= _READ_AHEAD:
            self._write_at(_FRAME.pack(size | (_MARK if marked else 0)) + data, pos)
        else:  # a wrap, a larger ring, or a large item
            pad = 0 if need + _SLACK <= tail else tail
            if unread + pad + need + _SLACK > cap:
                new_cap = max(2 * cap, 2 * (need + _SLACK))
                self._append_in_new_ring(data, pos, total, new_cap, marked)
                return total == read
            if pad:
                self._write_at(_FRAME.pack(_SKIP), pos)
                pos = at
                need += pad
            self._write_frame(data, at if pad else pos, marked)
        if _steps.step:
            _steps.step("overflow:frame-written")
        w[_W_TOTAL] = total + need  # one store commits the item
        return total == read

    def _append_in_new_ring(
        self, data: bytes | memoryview, pos: int, total: int, cap: int, marked: bool
    ) -> None:
        w, marks = self._w, self._marks
        at = w[_END]
        self._write_at(_FRAME.pack(_JUMP) + _JUMP_TO.pack(at, cap), pos)
        self._write_frame(data, at, marked)
        marks[self._w_torn] = 1
        if _steps.step:
            _steps.step("overflow:jump-marked")
        w[_END] = at + cap
        w[_W_AT] = at
        w[_W_CAP] = cap
        w[_W_T0] = total + _JUMP_SIZE
        if _steps.step:
            _steps.step("overflow:ring-moved")
        w[_W_TOTAL] = total + _JUMP_SIZE + _FRAME.size + len(data)
        marks[self._w_torn] = 0

    def _write_frame(self, data: bytes | memoryview, pos: int, marked: bool) -> None:
        head = _FRAME.pack(len(data) | (_MARK if marked else 0))
        if len(data) <= _READ_AHEAD:
            self._write_at(head + data, pos)
        else:
            self._write_at(head, pos, memoryview(data).cast("B"))

    def _write_at(self, data: bytes, pos: int, more: memoryview | None = None) -> None:
        """Write ``data`` (then ``more``) at ring position ``pos``, every byte or ``OSError``.

        A full disk may take part of a write and refuse the rest: a short count is
        never taken for success.
        """
        views = [memoryview(data)] if more is None else [memoryview(data), more]
        offset = self._base + pos
        while views:
            done = os.pwritev(self._fd, [v[:_MAX_IO] for v in views], offset)
            if done <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            offset += done
            while views and done >= len(views[0]):
                done -= len(views[0])
                views.pop(0)
            if views and done:
                views[0] = views[0][done:]

    # -- reading (under the read lock) -------------------------------------------------

    def take(self) -> bytes | memoryview | None:
        """The oldest item, or None if only markers were left to pass."""
        w = self._w
        while True:
            total = w[_R_TOTAL]
            unread = w[_W_TOTAL] - total
            if unread <= 0:
                return None
            at, cap = w[_R_AT], w[_R_CAP]
            pos = at + (total - w[_R_T0]) % cap
            buf = self._cache
            off = pos - self._cache_at
            if self._cache_lap != w[_LAP] or not 0 <= off <= len(buf) - _JUMP_SIZE:
                buf, off = self._refill(pos, min(unread, at + cap - pos)), 0
            (word,) = _FRAME.unpack_from(buf, off)
            if word & _SKIP:
                w[_LAP] = w[_LAP] + 1
                w[_R_TOTAL] = total + at + cap - pos
                continue
            if word & _JUMP:
                new_at, new_cap = _JUMP_TO.unpack_from(buf, off + _FRAME.size)
                self._marks[self._r_torn] = 1
                w[_LAP] = w[_LAP] + 1
                w[_R_AT] = new_at
                w[_R_CAP] = new_cap
                w[_R_T0] = total + _JUMP_SIZE
                w[_R_TOTAL] = total + _JUMP_SIZE
                self._marks[self._r_torn] = 0
                continue
            self.marked = bool(word & _MARK)
            word &= ~_MARK
            start = off + _FRAME.size
            data: bytes | memoryview
            if start + word <= len(buf):
                data = memoryview(buf)[start : start + word]
            else:  # larger than the read-ahead: one read straight from the file
                data = self._pread_exactly(word, self._base + pos + _FRAME.size)
            w[_R_TOTAL] = total + _FRAME.size + word  # one store takes the item
            return data

    def _refill(self, pos: int, readable: int) -> bytes:
        """Read ahead from ring position ``pos``: committed bytes only, which stay put."""
        cache = os.pread(self._fd, min(readable, _READ_AHEAD), self._base + pos)
        if len(cache) < _FRAME.size:
            raise ChannelBroken(f"{WHY[BROKEN_TORN]} (the overflow file ends early)")
        self._cache, self._cache_at, self._cache_lap = cache, pos, self._w[_LAP]
        return cache

    def _pread_exactly(self, size: int, offset: int) -> bytes | memoryview:
        data = os.pread(self._fd, size, offset)
        if len(data) == size:
            return data
        buf = bytearray(size)
        buf[: len(data)] = data
        view, offset = memoryview(buf)[len(data) :], offset + len(data)
        while view:
            got = os.preadv(self._fd, [view[:_MAX_IO]], offset)
            if got == 0:
                raise ChannelBroken(f"{WHY[BROKEN_TORN]} (the overflow file ends early)")
            view, offset = view[got:], offset + got
        return memoryview(buf)

    # -- compacting (under both locks) -------------------------------------------------

    def needs_rewind(self) -> bool:
        """Whether a drained overflow should start over in one ring at the file's start."""
        w = self._w
        return bool(w[_W_AT] or w[_W_CAP] > _SHRINK_ABOVE)

    def rewind(self) -> None:
        """Start over in one ring at the start of the file, giving the rest back."""
        w = self._w
        if self.pending():
            return
        cap = w[_W_CAP]
        cap = cap if cap <= _SHRINK_ABOVE else _FIRST_RING
        total = w[_W_TOTAL]
        marks = self._marks
        marks[self._w_torn] = marks[self._r_torn] = 1
        w[_LAP] = w[_LAP] + 1
        for at_word, cap_word, start_word in ((_W_AT, _W_CAP, _W_T0), (_R_AT, _R_CAP, _R_T0)):
            w[at_word] = 0
            w[cap_word] = cap
            w[start_word] = total
        w[_END] = cap
        marks[self._w_torn] = marks[self._r_torn] = 0
        os.ftruncate(self._fd, self._base + cap)
