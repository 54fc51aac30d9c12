"""Unnamed shared memory: a file with no name, mapped by every process that holds it.

A segment is made with ``memfd_create`` (or an ``O_TMPFILE`` file, or a file
unlinked at once), so no death can leave a name behind in ``/dev/shm`` or a
temporary folder; its pages are allocated when it is made, so a full disk
fails here, not as a SIGBUS later. It reaches a child process as a descriptor
passed when the child starts, as a local channel does.
"""

from __future__ import annotations

import errno
import mmap
import os
import tempfile
import weakref
from multiprocessing import reduction
from multiprocessing.context import get_spawning_popen
from typing import Protocol

from .._errors import ChannelError

__all__ = ["Segment"]

_O_TMPFILE: int = getattr(os, "O_TMPFILE", 0)


class Segment:
    """``size`` bytes of shared memory, zeroed when made; ``map`` is this process's mapping."""

    __slots__ = ("__weakref__", "_fd", "map", "size", "what")

    def __init__(self, fd: int, size: int, what: str) -> None:
        self._fd = fd
        self.size = size
        self.what = what
        self.map = mmap.mmap(fd, size)
        weakref.finalize(self, os.close, fd)

    @classmethod
    def create(cls, size: int, what: str) -> Segment:
        """A new zeroed segment for a ``what`` (named in errors); ``ChannelError`` if no room."""
        fd = -1
        try:
            fd = _unnamed_file()
            os.posix_fallocate(fd, 0, size)
            return cls(fd, size, what)
        except OSError as exc:
            if fd >= 0:
                os.close(fd)
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ChannelError(f"cannot make the shared memory of a {what}: {reason}") from exc

    def __reduce__(self) -> tuple[object, ...]:
        if get_spawning_popen() is None:
            raise ChannelError(
                f"a {self.what} can be given to a child process only as an argument when it "
                "starts (multiprocessing.Process(args=...)); to share state with processes "
                "that are already running, use a ChannelManager's dict or list"
            )
        return (_rebuild, (reduction.DupFd(self._fd), self.size, self.what))


class _Detachable(Protocol):
    def detach(self) -> int: ...


def _rebuild(dup: _Detachable, size: int, what: str) -> Segment:
    return Segment(dup.detach(), size, what)


def _unnamed_file() -> int:
    """A descriptor of a new empty file that has no name."""
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None:
        try:
            fd: int = memfd("channels-state", os.MFD_CLOEXEC)
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EPERM):
                raise
        else:
            return fd
    folder = tempfile.gettempdir()
    if _O_TMPFILE:
        try:
            return os.open(folder, _O_TMPFILE | os.O_RDWR, 0o600)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
    fd, path = tempfile.mkstemp(prefix="channels-state-", dir=folder)
    os.unlink(path)
    return fd
