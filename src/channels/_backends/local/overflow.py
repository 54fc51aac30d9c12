"""The overflow of a local channel: a ring of frames in a file its processes share.

Items the pipe cannot take at once are appended here. A frame is an 8-byte
length and the item's bytes. Two markers steer readers: SKIP (the rest of the
ring is padding: go back to its start) and JUMP (the ring was full: go on in a
larger ring further down the file). The file thus stays about as large as the
largest backlog, and its pages are written again rather than allocated anew.

Each side keeps a running total of the bytes it has passed; positions within a
ring follow from the totals, so the writer commits an item, and a reader takes
one, with a single store each. Bytes below the write total never change until a
reader has passed them. Callers hold the channel's write lock to append and its
read lock to take.

Every process maps the rings into its memory, so moving an item is a copy, not a
system call. The writer sets file space aside (``posix_fallocate``) before it
stores into it, so a full disk raises ``OSError`` before the item is committed
and leaves the ring as it was; a store never meets a missing page (SIGBUS).

A stored batch (``_codec.Batch``: a whole ``send_many`` as one pickle) is one
frame whose header also holds its item count. Readers may take it in parts:
``_B_AT`` names the read total at which the frame being split starts and
``_B_TAKEN`` how many of its items are taken. A split is stored taken count
first, frame second, once every frame before it is passed, so a reader that
dies between the stores has taken at most the items of its own call; since
read totals only grow, a ``_B_AT`` left behind never names a later frame.

Only a jump to a larger ring, a reader following one, and a rewind change
several words at once; each sets its side's torn marker first and clears it
last, so a lock's next holder, after its holder died, knows the ring is torn.
"""

from __future__ import annotations

import errno
import mmap
import os
import struct
from collections.abc import Sequence

from ..._codec.payloads import Frame, Part
from ..._engine import steps as _steps
from ..._engine.conditions import Broken, Condition, error
from ..._engine.ledger import Words

__all__ = ["TOTALS", "WORDS", "Overflow"]

_FRAME = struct.Struct("!Q")
_JUMP_TO = struct.Struct("!QQ")  # where the next ring starts, and its size
_SKIP = 1 << 63
_JUMP = 1 << 62
_MARK = 1 << 61  # the frame holds a ticket for a large item (see shm), not an item
_BATCH = 1 << 60  # the frame holds a batch: its item count above bit 32, its size below
_COUNT_SHIFT, _COUNT, _SIZE = 32, (1 << 28) - 1, (1 << 32) - 1
_JUMP_SIZE = _FRAME.size + _JUMP_TO.size
_SLACK = 32  # room always kept free, so a marker fits wherever the writer stands
_FIRST_RING = 1 << 20
_SHRINK_ABOVE = 64 << 20  # a drained ring larger than this starts small again
_CHUNK = 1 << 20  # file space is set aside this much at a time where there is room
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)

# Word offsets from the overflow's first word.
# _ALLOC: how much of the file, from the first ring's start, is set aside (allocated).
# _B_AT, _B_TAKEN: the batch being taken in parts (see the module docstring).
_W_TOTAL, _R_TOTAL, _W_AT, _W_CAP, _W_T0, _R_AT, _R_CAP, _R_T0, _END, _ALLOC = range(10)
_B_AT, _B_TAKEN = 10, 11
WORDS = 12
#: The write and read totals: the overflow holds something while they differ (``pending``).
TOTALS = (_W_TOTAL, _R_TOTAL)

#: What ``peek_many`` found: the payloads, how many items they hold, and what
#: ``take_to`` stores to take them.
Run = tuple[list[bytes | Part], int, int, tuple[int, int] | None]


class Overflow:
    """The overflow ring of one channel, as seen from one process."""

    __slots__ = (
        "_base",
        "_fd",
        "_frame",
        "_marks",
        "_mm",
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
        self._mm: mmap.mmap | None = None  # this process's map of the rings (see _mapping)
        self._frame: tuple[int, Frame] | None = None  # the batch this process split last
        #: Whether the frame ``take`` returned last was appended ``marked``.
        self.marked = False

    def initialise(self) -> None:
        """Lay out an empty first ring (in a new channel)."""
        w = self._w
        for at_word, cap_word in ((_W_AT, _W_CAP), (_R_AT, _R_CAP)):
            w[at_word] = 0
            w[cap_word] = _FIRST_RING
        w[_END] = _FIRST_RING
        w[_B_AT] = -1

    def pending(self) -> bool:
        """Whether the overflow holds anything a reader has not passed yet."""
        w = self._w
        return w[_W_TOTAL] != w[_R_TOTAL]

    # -- writing (under the write lock) ------------------------------------------------

    def append(self, data: bytes | memoryview, marked: bool = False) -> bool:
        """Append one item (``marked``: a ticket); return whether the overflow was empty."""
        return self._append(data, _MARK if marked else 0)

    def append_batch(self, data: bytes, count: int) -> bool:
        """Append a batch of ``count`` items pickled as one list; whether the overflow was empty."""
        return self._append(data, _BATCH | count << _COUNT_SHIFT)

    def _append(self, data: bytes | memoryview, flags: int) -> bool:
        if type(data) is not bytes:
            data = memoryview(data).cast("B")
        w = self._w
        total, read = w[_W_TOTAL], w[_R_TOTAL]
        at, cap, start = w[_W_AT], w[_W_CAP], w[_W_T0]
        size = len(data)
        need = _FRAME.size + size
        pos = at + (total - start) % cap
        unread = total - (read if read > start else start)
        tail = at + cap - pos
        if need + _SLACK <= tail and unread + need + _SLACK <= cap:
            end = pos + need
            if end > w[_ALLOC]:
                self._allocate(end)
            mm = self._mm
            if mm is None or len(mm) < end:
                mm = self._mapping(end)
            mm[pos : pos + _FRAME.size] = _FRAME.pack(size | flags)
            mm[pos + _FRAME.size : end] = data
        else:  # a wrap, or a larger ring
            pad = 0 if need + _SLACK <= tail else tail
            if unread + pad + need + _SLACK > cap:
                new_cap = max(2 * cap, 2 * (need + _SLACK))
                self._append_in_new_ring(data, pos, total, new_cap, flags)
                return total == read
            if pad:
                self._write_at(_FRAME.pack(_SKIP), pos)
                pos = at
                need += pad
            self._write_frame(data, at if pad else pos, flags)
        if _steps.step:
            _steps.step("overflow:frame-written")
        w[_W_TOTAL] = total + need  # one store commits the item
        return total == read

    def _append_in_new_ring(
        self, data: bytes | memoryview, pos: int, total: int, cap: int, flags: int
    ) -> None:
        w, marks = self._w, self._marks
        at = w[_END]
        self._write_at(_FRAME.pack(_JUMP) + _JUMP_TO.pack(at, cap), pos)
        self._write_frame(data, at, flags)
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

    def _write_frame(self, data: bytes | memoryview, pos: int, flags: int) -> None:
        self._write_at(_FRAME.pack(len(data) | flags), pos, data)

    def _write_at(self, head: bytes, pos: int, data: bytes | memoryview = b"") -> None:
        """Copy ``head`` then ``data`` to ring position ``pos``, into file space set aside first.

        ``posix_fallocate`` either sets the space aside or raises ``OSError`` (a full
        disk), so a store into the mapping can never meet a missing page (SIGBUS).
        """
        end = pos + len(head) + len(data)
        w = self._w
        if end > w[_ALLOC]:
            self._allocate(end)
        mm = self._mapping(end)
        mm[pos : pos + len(head)] = head
        if data:
            mm[pos + len(head) : end] = data

    def _allocate(self, end: int) -> None:
        """Set aside the file up to ring offset ``end`` (a chunk more where there is room)."""
        w = self._w
        done = w[_ALLOC]
        base = self._base + done
        want = max(end, min(done + _CHUNK, w[_END])) - done
        try:
            os.posix_fallocate(self._fd, base, want)
        except OSError as exc:
            if exc.errno not in _NO_SPACE or want == end - done:
                raise
            os.posix_fallocate(self._fd, base, end - done)  # just what this frame needs
            want = end - done
        w[_ALLOC] = done + want

    def _mapping(self, end: int) -> mmap.mmap:
        """This process's map of the rings, covering at least up to ring offset ``end``."""
        mm = self._mm
        if mm is None or len(mm) < end:
            # Map what is set aside: the file is at least that long (see rewind).
            mm = self._mm = mmap.mmap(self._fd, max(end, self._w[_ALLOC]), offset=self._base)
        return mm

    # -- reading (under the read lock) -------------------------------------------------

    def take(self) -> bytes | Part | None:
        """The oldest item, or None if only markers were left to pass.

        A stored batch gives one item, as a ``Part``; ``marked`` says whether a
        plain frame is a ticket.
        """
        w = self._w
        self._pass_markers()
        total = w[_R_TOTAL]
        unread = w[_W_TOTAL] - total
        if unread <= 0:
            return None
        items, _, upto, split = self.peek_many(1)
        if items:
            self.take_to(upto, split)
            self.marked = False
            return items[0]
        at, cap = w[_R_AT], w[_R_CAP]
        pos = at + (total - w[_R_T0]) % cap
        (word,) = _FRAME.unpack_from(self._mapping(pos + _FRAME.size), pos)
        self.marked = bool(word & _MARK)
        word &= ~_MARK
        start = pos + _FRAME.size
        if word > unread - _FRAME.size:
            raise error(Condition.BROKEN, Broken.TORN, "an overflow frame runs past the end")
        data = self._mapping(start + word)[start : start + word]
        w[_R_TOTAL] = total + _FRAME.size + word  # one store takes the item
        return data

    def _pass_markers(self) -> None:
        """Follow the markers at the read position: a skip to the ring's start, a jump."""
        w = self._w
        while True:
            total = w[_R_TOTAL]
            if w[_W_TOTAL] - total <= 0:
                return
            at, cap = w[_R_AT], w[_R_CAP]
            pos = at + (total - w[_R_T0]) % cap
            mm = self._mapping(pos + _FRAME.size)  # what was stored: the file may end there
            (word,) = _FRAME.unpack_from(mm, pos)
            if word & _SKIP:
                w[_R_TOTAL] = total + at + cap - pos
            elif word & _JUMP:
                mm = self._mapping(pos + _JUMP_SIZE)
                new_at, new_cap = _JUMP_TO.unpack_from(mm, pos + _FRAME.size)
                self._marks[self._r_torn] = 1
                w[_R_AT] = new_at
                w[_R_CAP] = new_cap
                w[_R_T0] = total + _JUMP_SIZE
                w[_R_TOTAL] = total + _JUMP_SIZE
                self._marks[self._r_torn] = 0
            else:
                return

    def peek_many(self, limit: int) -> Run:
        """Up to ``limit`` items from the oldest on, not yet taken, and what ``take_to``
        stores to take them all.

        Plain items come as bytes; a stored batch as a ``Part`` of up to the items
        still wanted, so a batch larger than that is split. Stops at a marker or
        a ticket, which ``take`` deals with; so every item lies in one run of
        the current ring.
        """
        w = self._w
        total = w[_R_TOTAL]
        at, cap = w[_R_AT], w[_R_CAP]
        pos = first = at + (total - w[_R_T0]) % cap
        # Every committed frame lies below the space set aside; past it the file may end.
        stop = min(pos + min(w[_W_TOTAL] - total, at + cap - pos), w[_ALLOC])
        items: list[bytes | Part] = []
        if stop - pos < _FRAME.size:
            return items, 0, total, None
        wanted = limit
        mm = self._mm
        if mm is None or len(mm) < stop:
            mm = self._mapping(stop)
        unpack, append, head = _FRAME.unpack_from, items.append, _FRAME.size
        last = stop - head
        while pos <= last:
            (word,) = unpack(mm, pos)
            start = pos + head
            if start + word > stop:  # also every marker, ticket and batch: their flags are high
                if word & (_SKIP | _JUMP | _MARK) or not word & _BATCH:
                    break
                end = start + (word & _SIZE)
                if end > stop:
                    break
                key = total + pos - first
                count = word >> _COUNT_SHIFT & _COUNT
                taken = w[_B_TAKEN] if key == total and w[_B_AT] == key else 0
                frame = self._frame_at(key, mm, start, end, count)
                if count - taken > limit:
                    self._frame = (key, frame)  # its next part here loads nothing again
                    append(Part(frame, taken, taken + limit))
                    return items, wanted, key, (key, taken + limit)
                if taken:
                    self._frame = None
                append(Part(frame, taken, count))
                pos = end
                limit -= count - taken
            else:
                pos = start + word
                append(mm[start:pos])
                limit -= 1
            if not limit:
                break
        return items, wanted - limit, total + pos - first, None

    def _frame_at(self, key: int, mm: mmap.mmap, start: int, end: int, count: int) -> Frame:
        """The stored batch at read total ``key``: the one split last here, or read now."""
        kept = self._frame
        if kept is not None and kept[0] == key:
            return kept[1]
        return Frame(mm[start:end], count)

    def take_to(self, total: int, split: tuple[int, int] | None = None) -> None:
        """Take what ``peek_many`` returned.

        One store, or, where it split a batch, three: the frames before the split
        one, then its taken count, then the frame it counts for (see the module
        docstring).
        """
        w = self._w
        if split is None:
            w[_R_TOTAL] = total
            return
        key, taken = split
        if w[_B_AT] != key:
            w[_R_TOTAL] = key
            w[_B_TAKEN] = taken
            w[_B_AT] = key
        else:
            w[_B_TAKEN] = taken

    def append_many(self, items: Sequence[object], start: int, end: int) -> int:
        """Append ``items[start:end]`` while they fit in the ring's current run, committing
        them with one store; how many went (0: let ``append`` wrap or grow the ring).
        """
        w = self._w
        total, read = w[_W_TOTAL], w[_R_TOTAL]
        at, cap, t0 = w[_W_AT], w[_W_CAP], w[_W_T0]
        pos = at + (total - t0) % cap
        room = min(at + cap - pos, cap - (total - (read if read > t0 else t0))) - _SLACK
        pack, head = _FRAME.pack, _FRAME.size
        parts: list[bytes] = []
        size = 0
        i = start
        while i < end:
            data = items[i]
            if type(data) is not bytes:
                break  # a ticket or a serializer's own buffer type: one at a time
            if size + head + len(data) > room:
                break
            parts += (pack(len(data)), data)
            size += head + len(data)
            i += 1
        if i == start:
            return 0
        end_at = pos + size
        if end_at > w[_ALLOC]:
            self._allocate(end_at)
        mm = self._mm
        if mm is None or len(mm) < end_at:
            mm = self._mapping(end_at)
        mm[pos:end_at] = b"".join(parts)
        if _steps.step:
            _steps.step("overflow:frame-written")
        w[_W_TOTAL] = total + size  # one store commits them all
        return i - start

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
        for at_word, cap_word, start_word in ((_W_AT, _W_CAP, _W_T0), (_R_AT, _R_CAP, _R_T0)):
            w[at_word] = 0
            w[cap_word] = cap
            w[start_word] = total
        w[_END] = cap
        marks[self._w_torn] = marks[self._r_torn] = 0
        w[_ALLOC] = 0  # first: the file must never be shorter than what is set aside
        os.ftruncate(self._fd, self._base + cap)
