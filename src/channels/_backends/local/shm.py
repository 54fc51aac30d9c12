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
"""

from __future__ import annotations

import array
import contextlib
import errno
import mmap
import os
import socket
import struct

from ..._codec import OutOfBand
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


def _aligned(size: int) -> int:
    return -(-size // _ALIGN) * _ALIGN


class Shm:
    """One process's end of a channel's side socket (both ends, one per direction)."""

    __slots__ = ("_recv", "_send")

    def __init__(self, send_fd: int, recv_fd: int) -> None:
        self._send = socket.socket(fileno=os.dup(send_fd))
        self._recv = socket.socket(fileno=os.dup(recv_fd))
        self._send.setblocking(False)
        self._recv.setblocking(False)

    def close(self) -> None:
        self._send.close()
        self._recv.close()

    def ship(self, number: int, payload: OutOfBand) -> bytes:
        """Copy the buffers into a new memfd, hand it to the socket; return the ticket.

        Raises ``OSError`` (nothing shipped) when memory or the socket is full.
        """
        sizes = [b.nbytes for b in payload.buffers]
        fd = os.memfd_create("channel-item", os.MFD_CLOEXEC)
        try:
            total = sum(_aligned(size) for size in sizes)
            os.ftruncate(fd, total)
            at = 0
            for buf, size in zip(payload.buffers, sizes, strict=True):
                view = buf.cast("B") if buf.format != "B" or buf.ndim != 1 else buf
                done = 0
                while done < size:
                    wrote = os.pwrite(fd, view[done:], at + done)
                    if wrote <= 0:
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    done += wrote
                at += _aligned(size)
            message = _SIZE.pack(number)
            fds = array.array("i", [fd])
            self._send.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        finally:
            os.close(fd)
        head = _TICKET.pack(number, payload.kind, len(sizes), len(payload.head))
        return head + b"".join(_SIZE.pack(s) for s in sizes) + payload.head

    def redeem(self, ticket: bytes | memoryview) -> OutOfBand:
        """Take the descriptor that ``ticket`` names from the socket and map its buffers."""
        number, kind, count, head_len = _TICKET.unpack_from(ticket)
        at = _TICKET.size
        sizes = [_SIZE.unpack_from(ticket, at + i * _SIZE.size)[0] for i in range(count)]
        at += count * _SIZE.size
        head = bytes(ticket[at : at + head_len])
        fd = self._take(number)
        try:
            total = sum(_aligned(size) for size in sizes)
            flags = mmap.MAP_SHARED | _POPULATE
            region = mmap.mmap(fd, total, flags=flags) if total else mmap.mmap(-1, 1)
        finally:
            os.close(fd)
        whole = memoryview(region)
        buffers: list[memoryview] = []
        offset = 0
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


def side_pair() -> tuple[int, int]:
    """A datagram socket pair for descriptors: (the senders' end, the receivers' end)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    return a.detach(), b.detach()
