"""Large items of a local channel through anonymous shared memory.

A sender copies an item's large buffers into a new ``memfd`` (memory with no
name, so nothing can be left in ``/dev/shm``), hands the descriptor to the
channel's side socket (``SCM_RIGHTS``), and puts a small *ticket* in the
channel's stream where the item would be: the ticket orders the item among the
others. The receiver that takes the ticket takes the matching descriptor from
the socket and maps it; the item's buffers are views of that mapping, which
is then the receiver's alone (the sender closed its descriptor), unmapped
when the last view goes.

Why a death cannot leak or mismatch: the descriptor is in the socket before the
ticket is committed, and the kernel owns a descriptor in flight, so a dead
sender leaves at most a descriptor no ticket names, and a dead receiver at most
one whose ticket it took. Tickets carry an increasing number that the socket
message repeats; a receiver drops (closes) every message older than its ticket.
When the last process closes the socket, the kernel frees whatever is in it.

A sender keeps a few segments it shipped (``_Segments``): memory whose pages
are already there takes a copy at memory speed, while a new memfd has every
page allocated and cleared first. A segment is used again only once its
receiver has let go of it: the first page is a header whose first byte the
receiver sets when its mapping is gone. A receiver that dies, or forks while it
holds the item (the child could still read it), never sets it, and the segment
is never used again.
"""

from __future__ import annotations

import array
import contextlib
import errno
import mmap
import os
import socket
import struct
import threading
import weakref

from ..._codec.payloads import OutOfBand
from ..._errors import ChannelBroken

__all__ = ["Shm", "side_pair"]

# A ticket: its number, the payload kind, the number of buffers, the head's
# length; then each buffer's size; then the head.
_TICKET = struct.Struct("!QBIQ")
_SIZE = struct.Struct("!Q")
_ALIGN = 64  # each buffer starts on a cache line, as numpy likes
_FDS = socket.CMSG_LEN(array.array("i").itemsize)
# Map every page at once: one call instead of a fault per page when the data is read.
_POPULATE: int = getattr(mmap, "MAP_POPULATE", 0)


_HEADER = mmap.PAGESIZE  # the first page of a segment: its released flag
_KEEP_COUNT = 4  # the most segments a sender keeps for reuse ...
_KEEP_BYTES = 512 << 20  # ... and their most bytes in all


def _aligned(size: int) -> int:
    return -(-size // _ALIGN) * _ALIGN


class _Segment:
    """A memfd a sender shipped before, with the sender's own map of it."""

    __slots__ = ("fd", "map", "size")

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self.map = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | _POPULATE)

    @property
    def released(self) -> bool:
        return self.map[0] == 1

    def close(self) -> None:
        with contextlib.suppress(BufferError):
            self.map.close()
        os.close(self.fd)


class _Release:
    """Set a received segment's released flag once the receiver's map of it is gone."""

    __slots__ = ("__weakref__", "header", "pinned")

    def __init__(self, fd: int) -> None:
        self.header = mmap.mmap(fd, _HEADER)
        self.pinned = False

    def __call__(self) -> None:
        _live.discard(self)
        if not self.pinned:
            self.header[0] = 1
        self.header.close()


_live: set[_Release] = set()  # releases of segments this process still maps


def _pin_all() -> None:
    """At a fork, the child gets every mapped segment too: none may be reused."""
    for release in list(_live):
        release.pinned = True


os.register_at_fork(before=_pin_all)


class Shm:
    """One process's end of a channel's side socket (both ends, one per direction)."""

    __slots__ = ("_kept", "_lock", "_recv", "_send")

    def __init__(self, send_fd: int, recv_fd: int) -> None:
        self._kept: list[_Segment] = []
        self._lock = threading.Lock()
        self._send = socket.socket(fileno=os.dup(send_fd))
        self._recv = socket.socket(fileno=os.dup(recv_fd))
        self._send.setblocking(False)
        self._recv.setblocking(False)

    def close(self) -> None:
        self._send.close()
        self._recv.close()
        with self._lock:
            kept, self._kept = self._kept, []
        for segment in kept:
            segment.close()

    def ship(self, number: int, payload: OutOfBand) -> bytes:
        """Copy the buffers into a segment, hand it to the socket; return the ticket.

        Raises ``OSError`` (nothing shipped) when memory or the socket is full.
        """
        sizes = [b.nbytes for b in payload.buffers]
        total = _HEADER + sum(_aligned(size) for size in sizes)
        segment = self._reusable(total)
        fd = segment.fd if segment is not None else os.memfd_create("channel-item", os.MFD_CLOEXEC)
        try:
            if segment is None:
                os.ftruncate(fd, total)
            else:
                segment.map[0] = 0
            at = _HEADER
            for buf, size in zip(payload.buffers, sizes, strict=True):
                view = buf.cast("B") if buf.format != "B" or buf.ndim != 1 else buf
                if segment is not None:
                    segment.map[at : at + size] = view
                else:
                    _pwrite_all(fd, view, at)
                at += _aligned(size)
            message = _SIZE.pack(number)
            fds = array.array("i", [fd])
            self._send.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        except BaseException:
            if segment is not None:
                segment.close()
            else:
                os.close(fd)
            raise
        if segment is None and total > _KEEP_BYTES:
            os.close(fd)
        elif segment is None:
            self._keep(_Segment(fd, total))
        else:
            self._keep(segment)
        head = _TICKET.pack(number, payload.kind, len(sizes), len(payload.head))
        return head + b"".join(_SIZE.pack(s) for s in sizes) + payload.head

    def _reusable(self, total: int) -> _Segment | None:
        """A kept segment its receiver let go of, large enough but not wastefully so."""
        with self._lock:
            for segment in self._kept:
                if total <= segment.size <= 2 * total and segment.released:
                    self._kept.remove(segment)
                    return segment
        return None

    def _keep(self, segment: _Segment) -> None:
        """Keep a segment just shipped for reuse, dropping the oldest past the limits."""
        with self._lock:
            self._kept.append(segment)
            while len(self._kept) > _KEEP_COUNT or sum(k.size for k in self._kept) > _KEEP_BYTES:
                self._kept.pop(0).close()

    def redeem(self, ticket: bytes | memoryview) -> OutOfBand:
        """Take the descriptor that ``ticket`` names from the socket and map its buffers."""
        number, kind, count, head_len = _TICKET.unpack_from(ticket)
        at = _TICKET.size
        sizes = [_SIZE.unpack_from(ticket, at + i * _SIZE.size)[0] for i in range(count)]
        at += count * _SIZE.size
        head = bytes(ticket[at : at + head_len])
        fd = self._take(number)
        try:
            total = _HEADER + sum(_aligned(size) for size in sizes)
            region = mmap.mmap(fd, total, flags=mmap.MAP_SHARED | _POPULATE)
            release = _Release(fd)
        finally:
            os.close(fd)
        _live.add(release)
        weakref.finalize(region, release)
        whole = memoryview(region)
        buffers: list[memoryview] = []
        offset = _HEADER
        for size in sizes:
            buffers.append(whole[offset : offset + size])
            offset += _aligned(size)
        return OutOfBand(kind, head, buffers)

    def _take(self, number: int) -> int:
        """The descriptor for ticket ``number``; older, orphaned ones are closed."""
        while True:
            try:
                message, ancillary, _, _ = self._recv.recvmsg(_SIZE.size, _FDS)
            except BlockingIOError:
                raise ChannelBroken(
                    "a large item's shared memory is missing from the channel"
                ) from None
            fds = array.array("i")
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            if len(message) != _SIZE.size or len(fds) != 1:
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                continue
            (seen,) = _SIZE.unpack(message)
            if seen == number:
                return fds[0]
            os.close(fds[0])  # a ticket that was never committed, or whose taker died
            if seen > number:
                raise ChannelBroken("a large item's shared memory is missing from the channel")


def _pwrite_all(fd: int, view: memoryview, at: int) -> None:
    done, size = 0, view.nbytes
    while done < size:
        wrote = os.pwrite(fd, view[done:], at + done)
        if wrote <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done += wrote


def side_pair() -> tuple[int, int]:
    """A datagram socket pair for descriptors: (the senders' end, the receivers' end)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    return a.detach(), b.detach()
