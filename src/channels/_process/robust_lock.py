"""A process-shared lock that its holder's death cannot wedge: a robust pthread mutex.

The mutex lives in memory every process of a channel maps (``MAP_SHARED``). It
is *robust*: when a thread dies holding it, however it died, the kernel marks it
and hands it to the next thread that asks, with a flag that says the holder
died. So a lock is never lost with its holder, and a live holder's lock is never
taken: there is no owner bookkeeping of our own to race with. It is also
*error-checking*: unlocking a mutex this thread does not hold fails, instead of
releasing someone else's lock.

The caller that receives ``OWNER_DIED`` holds the lock and must repair what the
dead holder may have left half done, then call ``recovered``; dying during that
repair hands the same flag to the next taker, so every repair must be idempotent.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import mmap
import time
from collections.abc import Callable
from functools import partial
from typing import NoReturn, cast

from .._errors import ChannelBroken, ChannelError
from .._timing import LOCK_SLICE

__all__ = ["MUTEX_BYTES", "OWNER_DIED", "RobustMutex", "release_failed"]

#: Room reserved for one mutex (glibc needs 40 bytes on x86_64, 48 on arm64).
MUTEX_BYTES = 64
#: ``acquire`` got the lock from a holder that died; repair, then call ``recovered``.
OWNER_DIED = 1

_PTHREAD_PROCESS_SHARED = 1
_PTHREAD_MUTEX_ROBUST = 1
_PTHREAD_MUTEX_ERRORCHECK = 2


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


_Call = Callable[..., int]


class _Pthread:
    """The pthread calls a robust mutex needs, looked up once."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        def fn(name: str, *args: object) -> _Call:
            f = getattr(lib, name)
            f.argtypes = list(args)
            f.restype = ctypes.c_int
            return cast(_Call, f)

        void_p, spec_p = ctypes.c_void_p, ctypes.POINTER(_Timespec)
        self.attr_init = fn("pthread_mutexattr_init", void_p)
        self.attr_destroy = fn("pthread_mutexattr_destroy", void_p)
        self.attr_setpshared = fn("pthread_mutexattr_setpshared", void_p, ctypes.c_int)
        self.attr_setrobust = fn("pthread_mutexattr_setrobust", void_p, ctypes.c_int)
        self.attr_settype = fn("pthread_mutexattr_settype", void_p, ctypes.c_int)
        self.init = fn("pthread_mutex_init", void_p, void_p)
        self.lock = fn("pthread_mutex_lock", void_p)
        self.trylock = fn("pthread_mutex_trylock", void_p)
        self.unlock = fn("pthread_mutex_unlock", void_p)
        self.consistent = fn("pthread_mutex_consistent", void_p)
        self.clocklock: _Call | None = None
        self.timedlock: _Call | None = None
        if hasattr(lib, "pthread_mutex_clocklock"):
            self.clocklock = fn("pthread_mutex_clocklock", void_p, ctypes.c_int, spec_p)
            self.clock = time.CLOCK_MONOTONIC
        else:  # glibc before 2.30: wall-clock deadlines, still bounded by the slice
            self.timedlock = fn("pthread_mutex_timedlock", void_p, spec_p)
            self.clock = time.CLOCK_REALTIME


def _load() -> _Pthread | None:
    for name in (None, ctypes.util.find_library("pthread")):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        if hasattr(lib, "pthread_mutexattr_setrobust") and hasattr(lib, "pthread_mutex_consistent"):
            return _Pthread(lib)
    return None


_pt = _load()


class RobustMutex:
    """A view of one robust, process-shared mutex at a fixed address in shared memory."""

    __slots__ = ("_addr", "_buffer", "_pt", "_trylock", "_unlock", "try_now", "unlock_now")

    def __init__(self, buffer: mmap.mmap, offset: int) -> None:
        if _pt is None:
            raise ChannelError(
                "local channels need robust process-shared mutexes, which this platform lacks; "
                "use the manager backend"
            )
        self._pt = _pt
        self._trylock, self._unlock = _pt.trylock, _pt.unlock  # the calls every item makes
        self._buffer = ctypes.c_char.from_buffer(buffer, offset)
        self._addr = ctypes.addressof(self._buffer)
        #: The bare calls, for a caller that takes the lock once per item: ``try_now()``
        #: answers 0 once the lock is taken (any other answer: ``acquire_after``), and
        #: ``unlock_now()`` 0 once it is let go (any other: ``release_failed``).
        self.try_now: Callable[[], int] = partial(_pt.trylock, self._addr)
        self.unlock_now: Callable[[], int] = partial(_pt.unlock, self._addr)

    def initialise(self) -> None:
        """Set up the mutex (once, in a new channel, before any other process sees it)."""
        pt = self._pt
        attr = ctypes.create_string_buffer(64)
        what = "set up a channel lock"
        _check(pt.attr_init(attr), what)
        _check(pt.attr_setpshared(attr, _PTHREAD_PROCESS_SHARED), what)
        _check(pt.attr_setrobust(attr, _PTHREAD_MUTEX_ROBUST), what)
        _check(pt.attr_settype(attr, _PTHREAD_MUTEX_ERRORCHECK), what)
        _check(pt.init(self._addr, attr), what)
        pt.attr_destroy(attr)

    def try_acquire(self) -> int | None:
        """Take the lock if it is free: 0, ``OWNER_DIED``, or None if another thread holds it."""
        rc = self._pt.trylock(self._addr)
        if rc == errno.EBUSY:
            return None
        return _result(rc)

    def acquire(self, deadline: float | None) -> int | None:
        """Take the lock: 0, ``OWNER_DIED``, or None once ``deadline`` (monotonic) has passed."""
        return self.acquire_after(self._trylock(self._addr), deadline)

    def acquire_after(self, rc: int, deadline: float | None) -> int | None:
        """``acquire``, given what ``try_now`` answered (``rc``): after ``OWNER_DIED`` this
        thread holds the lock already, and after ``EBUSY`` it waits for it."""
        if rc == 0:
            return 0
        if rc != errno.EBUSY:
            return _result(rc)
        while True:
            wait = LOCK_SLICE if deadline is None else min(LOCK_SLICE, deadline - time.monotonic())
            if wait <= 0:
                return self.try_acquire()
            rc = self._timed(wait)
            if rc != errno.ETIMEDOUT:
                return _result(rc)

    def _timed(self, wait: float) -> int:
        pt = self._pt
        until = time.clock_gettime(pt.clock) + wait
        spec = _Timespec(int(until), int((until % 1) * 1e9))
        if pt.clocklock is not None:
            return pt.clocklock(self._addr, pt.clock, ctypes.byref(spec))
        assert pt.timedlock is not None
        return pt.timedlock(self._addr, ctypes.byref(spec))

    def recovered(self) -> None:
        """Declare the state the dead holder left repaired (after ``OWNER_DIED``)."""
        _check(self._pt.consistent(self._addr), "recover a channel lock")

    def release(self) -> None:
        """Let go of the lock; fails loudly if this thread does not hold it."""
        rc = self._unlock(self._addr)
        if rc:
            release_failed(rc)


def release_failed(rc: int) -> NoReturn:
    """Raise for a failed unlock (``rc``: its answer), as ``release`` does."""
    raise ChannelError(f"cannot release a channel lock: {errno.errorcode.get(rc, rc)} ({rc})")


def _result(rc: int) -> int:
    if rc == 0:
        return 0
    if rc == errno.EOWNERDEAD:
        return OWNER_DIED
    if rc == errno.ENOTRECOVERABLE:
        raise ChannelBroken(
            "a process died holding the channel's lock and its state could not be repaired"
        )
    _check(rc, "take a channel lock")
    return 0


def _check(rc: int, what: str) -> None:
    if rc:
        raise ChannelError(f"cannot {what}: {errno.errorcode.get(rc, rc)} ({rc})")
