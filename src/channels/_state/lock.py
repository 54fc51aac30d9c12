"""``channels.Lock``: a process lock that a dead holder cannot wedge.

It is a robust mutex (``channels._process.robust_lock``) in shared memory: when the process
or thread holding it dies, however it dies, the next ``acquire`` gets it, logs
the death at WARNING, and goes on; ``multiprocessing.Lock`` would make every
other process wait forever. It is not reentrant: a thread that acquires a lock
it already holds gets a ``ChannelError`` instead of a deadlock.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from types import TracebackType
from typing import final

from .._errors import ChannelError, ConfigError
from .._process.robust_lock import MUTEX_BYTES, OWNER_DIED, RobustMutex
from .segment import Segment

__all__ = ["Lock"]

log = logging.getLogger(__name__)


def _me() -> tuple[int, int]:
    return os.getpid(), threading.get_ident()


@final
class Lock:
    """A lock shared by processes, which the next taker recovers when its holder dies.

    Use it as ``with lock:``, or ``acquire(block=True, timeout=None)`` and
    ``release()``, as ``multiprocessing.Lock``. Pass it to a child process as an
    argument when the child starts, under any start method.
    """

    __slots__ = ("__weakref__", "_holder", "_mutex", "_offset", "_segment")

    def __init__(self) -> None:
        segment = Segment.create(MUTEX_BYTES, "channels.Lock")
        self._attach(segment, 0)
        self._mutex.initialise()

    @classmethod
    def _view(cls, segment: Segment, offset: int) -> Lock:
        """The lock whose mutex is at ``offset`` in ``segment`` (set up by its maker)."""
        lock = cls.__new__(cls)
        lock._attach(segment, offset)
        return lock

    @classmethod
    def _inside(cls, segment: Segment, offset: int) -> Lock:
        """A new lock at ``offset`` in a new ``segment`` (the guard of a Value or Array)."""
        lock = cls._view(segment, offset)
        lock._mutex.initialise()
        return lock

    def _attach(self, segment: Segment, offset: int) -> None:
        self._segment = segment
        self._offset = offset
        self._mutex = RobustMutex(segment.map, offset)
        self._holder: tuple[int, int] | None = None

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Take the lock; return whether it was taken.

        Args:
            block: wait for the lock (else return False at once if it is held).
            timeout: the most seconds to wait; None (or -1, as in the stdlib) waits
                as long as the holder lives.

        Raises:
            ChannelError: this thread already holds the lock.
            ConfigError: a timeout with ``block=False``, or a negative timeout.
        """
        if timeout == -1:
            timeout = None
        if timeout is not None:
            if not block:
                raise ConfigError("a timeout cannot be given with block=False")
            if timeout < 0:
                raise ConfigError(f"a timeout is a number of seconds >= 0, not {timeout!r}")
        me = _me()
        if self._holder == me:
            raise ChannelError("this thread already holds this Lock, which is not reentrant")
        if not block:
            got = self._mutex.try_acquire()
        else:
            deadline = None if timeout is None else time.monotonic() + timeout
            got = self._mutex.acquire(deadline)
        if got is None:
            return False
        if got == OWNER_DIED:
            log.warning(
                "a process or thread died holding a channels.Lock; this process (pid %d) "
                "takes it over: what the lock guarded may be half updated",
                me[0],
            )
            self._mutex.recovered()
        self._holder = me
        return True

    def release(self) -> None:
        """Let go of the lock; ``ChannelError`` if this thread does not hold it."""
        held, self._holder = self._holder, None
        try:
            self._mutex.release()
        except ChannelError as exc:
            if held is not None and held != _me():
                self._holder = held
            raise ChannelError("release() of a Lock that this thread does not hold") from exc

    def locked(self) -> bool:
        """Whether some thread, in any process, holds the lock now (a hint, like the stdlib's)."""
        if self._holder == _me():
            return True
        got = self._mutex.try_acquire()
        if got is None:
            return True
        if got == OWNER_DIED:
            log.warning("a process or thread died holding a channels.Lock; recovered it")
            self._mutex.recovered()
        self._mutex.release()
        return False

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __reduce__(self) -> tuple[object, ...]:
        return (Lock._view, (self._segment, self._offset))

    def __repr__(self) -> str:
        return f"<channels.Lock {'locked' if self.locked() else 'unlocked'}>"
