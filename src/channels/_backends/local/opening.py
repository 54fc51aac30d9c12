"""The descriptors a local channel is made of: opened, prepared, closed."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile

from .shm import side_pair

__all__ = ["NO_SPACE", "close_all", "os_reason", "pipe", "prepare_pipe", "side_fds", "state_file"]

PIPE_SIZE = 1 << 20  # ask for a larger pipe, so bursts spill less often
O_DIRECT: int = getattr(os, "O_DIRECT", 0)
O_TMPFILE: int = getattr(os, "O_TMPFILE", 0)
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def state_file(folder: str | None, opened: list[int]) -> int:
    """A new file with no name (``O_TMPFILE``), so no death can leave it behind."""
    folder = folder or tempfile.gettempdir()
    if O_TMPFILE:
        try:
            fd = os.open(folder, O_TMPFILE | os.O_RDWR, 0o600)
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


def side_fds(opened: list[int]) -> tuple[int, int]:
    send, recv = side_pair()
    opened += (send, recv)
    return send, recv


def pipe(opened: list[int], *, blocking: bool = True) -> tuple[int, int]:
    reader, writer = os.pipe()
    opened += (reader, writer)
    if not blocking:  # several processes read it: poll may promise a byte another one takes
        os.set_blocking(reader, False)
        os.set_blocking(writer, False)
    return reader, writer


def prepare_pipe(reader: int, writer: int) -> bool:
    """Make both ends non-blocking, ask for a larger pipe and for packet mode.

    Returns whether packet mode (Linux's ``O_DIRECT`` pipes) is on: then each
    write of at most ``PIPE_BUF`` bytes is read back whole by one read.
    """
    packets = bool(O_DIRECT)
    for fd in (reader, writer):
        os.set_blocking(fd, False)
        if packets:
            try:
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | O_DIRECT)
            except OSError:
                packets = False
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    return packets


def os_reason(exc: OSError) -> str:
    if exc.errno == errno.EMFILE:
        return "this process has too many open files (raise its limit with ulimit -n)"
    if exc.errno == errno.ENFILE:
        return "the system has too many open files"
    if exc.errno in NO_SPACE:
        return f"no space left on the device ({exc.strerror})"
    return exc.strerror or str(exc)


def close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
