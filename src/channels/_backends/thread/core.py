"""The books and items of one ``thread`` channel: a deque under one lock.

Items are kept as they were sent (nothing is serialized), in a ``deque``
guarded by one ``threading.Lock``. The handles (``handles``) move an item
themselves on their per-item path (see ``ThreadCore`` for when they need the
lock); everything slower (waiting, closing, statistics) is here. A blocked
thread sleeps on a lock of its own that the next put (or take) releases, and
asyncio tasks wait on descriptors (``Signal``) that the core keeps readable
exactly while a retry may succeed, so ``await`` waits on the event loop itself.

The core also answers the engine's ``Core`` protocol, so ``select`` and the
shared waiting code treat it like any other backend's.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
import weakref
from _thread import LockType, allocate_lock
from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar, NoReturn

from ..._codec.serializers import PICKLE
from ..._engine.conditions import not_joinable, nothing_to_mark
from ..._engine.contract import ChannelStats
from ..._engine.core_base import CoreBase
from ..._errors import ChannelBroken, ChannelClosed, ConfigError, EndOfChannel

__all__ = ["FIRST", "NOTHING", "Signal", "ThreadCore", "cannot_cross"]

#: The token of the channel's own sender handle.
FIRST = 1

#: What ``take_one`` returns when there is no item (None may be an item).
NOTHING = object()

#: Whether a global interpreter lock makes single deque and counter operations atomic.
GIL: bool = getattr(sys, "_is_gil_enabled", lambda: True)()

_CROSSING = (
    "a thread channel holds its items in this process's memory and cannot cross to "
    "another process; for channels between processes use a process backend "
    "(open_channel('queue'), 'pipe', 'simplequeue', 'manager' or 'redis')"
)


def cannot_cross(what: str) -> NoReturn:
    """Refuse to pickle (or fork with) a thread channel's ``what``, saying what to use."""
    raise ConfigError(f"{what}: {_CROSSING}")


class Signal:
    """A descriptor that is readable while it is set: an event loop can wait on it.

    An eventfd where the system has one, else a pipe. Set and cleared only
    under the core's lock, so the flag always tells the descriptor's state.
    """

    __slots__ = ("__weakref__", "_read", "_write", "is_set")

    def __init__(self) -> None:
        if hasattr(os, "eventfd"):
            fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._read = self._write = fd
        else:  # pragma: no cover (systems without eventfd)
            self._read, self._write = os.pipe()
            os.set_blocking(self._read, False)
        self.is_set = False
        weakref.finalize(self, _close_fds, self._read, self._write)

    def fileno(self) -> int:
        return self._read

    def set(self) -> None:
        if not self.is_set:
            self.is_set = True
            os.write(self._write, b"\1\0\0\0\0\0\0\0")

    def clear(self) -> None:
        if self.is_set:
            self.is_set = False
            os.read(self._read, 8)


def _close_fds(read: int, write: int) -> None:
    os.close(read)
    if write != read:
        os.close(write)


class ThreadCore(CoreBase):
    """One thread channel's state. Fields the handles read on their fast path are public.

    Under the GIL, ``deque.append`` and ``popleft`` are atomic, and so is
    ``next`` on an ``itertools.count``: the handles then move an item and count
    it without the lock (``fast_put``, ``fast_take``), and take the lock only when
    ``watch_put`` (``watch_take``) says that someone else must hear of it: a
    sleeping thread, a descriptor an event loop may wait on, or the end. Every
    waiter sets the flag before it looks at the items once more, so no wake-up
    is lost.
    Bounded channels put, and free-threaded builds do everything, under the lock.
    """

    #: Its steps hold the lock only for a few statements and do no I/O: an event loop
    #: may run them itself (see ``contract.steps_on_loop``).
    steps_on_loop: ClassVar[bool] = True

    __slots__ = (
        "__weakref__",
        "_all_done",
        "_done",
        "_listening",
        "_next_token",
        "_received_more",
        "_rx_waiters",
        "_sent_more",
        "_tx_waiters",
        "ended",
        "fast_put",
        "fast_take",
        "forked",
        "items",
        "joinable",
        "lock",
        "maxsize",
        "ready_signal",
        "received",
        "receiver_open",
        "room_signal",
        "senders",
        "sent",
        "watch_put",
        "watch_take",
    )

    def __init__(self, maxsize: int, joinable: bool) -> None:
        super().__init__(PICKLE, None)  # never used: items are passed by reference
        self.maxsize = maxsize
        self.joinable = joinable
        self.forked = False
        self.fast_take = GIL
        self.fast_put = GIL and not maxsize
        self._reset()
        _LIVE.add(self)

    def _reset(self) -> None:
        self.lock = threading.Lock()
        self.items: deque[object] = deque()
        self.senders: set[int] = {FIRST}
        self._next_token = FIRST + 1
        self.ended = False
        self.receiver_open = True
        # Items counted by the handles' fast path (``next``), and under the lock (``+=``).
        self.sent = itertools.count()
        self.received = itertools.count()
        self._sent_more = self._received_more = self._done = 0
        self.watch_put = self.watch_take = False
        # Threads asleep until an item (or room) comes: each waits on a lock of its own,
        # released by whoever wakes it, and leaves the queue as it is woken.
        self._rx_waiters: deque[LockType] = deque()
        self._tx_waiters: deque[LockType] = deque()
        self._all_done = threading.Condition(self.lock)
        self.ready_signal: Signal | None = None  # readable while an item (or the end) is there
        self.room_signal: Signal | None = None  # readable while a bounded channel has room
        # Waits on the descriptors under way (``ready_fd`` until ``wait(..., 0)``): only
        # while there are any does every put and take keep them exact.
        self._listening = 0

    # -- the engine's Core protocol (select, and the shared waiting code) -------------------

    @property
    def first_token(self) -> int:
        return FIRST

    def put(self, token: int, items: Sequence[Any], deadline: float | None) -> int:
        """Put as many of ``items`` as fit now; raise if ``token`` may not send."""
        with self.lock:
            self.check_sendable(token)
            room = len(items)
            if self.maxsize:
                room = min(room, self.maxsize - len(self.items))
                if room <= 0:
                    if not self.receiver_open:
                        raise ChannelBroken("the channel is full and its receiver is closed")
                    return 0
            self.items.extend(items[:room] if room < len(items) else items)
            self._sent_more += room
            if self.watch_put:
                self._changed(room, 0)
            return room

    def put_one(self, token: int, item: object) -> bool:
        """Put ``item`` under the lock if handle ``token`` may send and there is room now.

        The per-item path where single steps are not atomic (a free-threaded build) or
        room must be checked with the put (a bounded channel).
        """
        with self.lock:
            items = self.items
            if token not in self.senders or (self.maxsize and len(items) >= self.maxsize):
                return False
            items.append(item)
            next(self.sent)
            if self.watch_put:
                self._changed(1, 0)
            return True

    def take_one(self) -> object:
        """Take the oldest item under the lock, or return ``NOTHING``."""
        with self.lock:
            items = self.items
            if not items:
                return NOTHING
            item = items.popleft()
            next(self.received)
            if self.watch_take:
                self._changed(0, 1)
            return item

    def take(self, max_items: int, deadline: float | None) -> list[Any]:
        """Up to ``max_items`` ready items, oldest first; [] if none is; raise at the end."""
        with self.lock:
            items = self.items
            got: list[Any] = []
            try:  # fast takers need no lock: take until it is empty, rather than count first
                for _ in range(max_items):
                    got.append(items.popleft())
            except IndexError:
                pass
            if not got:
                self.nothing_left()
                return []
            self._received_more += len(got)
            if self.watch_take:
                self._changed(0, len(got))
            return got

    def ready_fd(self, sending: bool) -> int | None:
        """A descriptor readable while a put (or a take) may succeed; None where puts never wait."""
        with self.lock:
            if self.forked:
                cannot_cross("this thread channel was inherited by a forked process")
            if sending and not self.maxsize:
                return None
            signal = self.room_signal if sending else self.ready_signal
            if signal is None:
                signal = Signal()
                if sending:
                    self.room_signal = signal
                else:
                    self.ready_signal = signal
            self._listening += 1
            self.watch_put = self.watch_take = True  # first, then look (see the class)
            self._reconcile()
            return signal.fileno()

    def wait(self, sending: bool, timeout: float) -> None:
        """Sleep at most ``timeout`` seconds until a put (or a take) may succeed."""
        if timeout <= 0:  # a wait on the descriptor is over: one fewer to keep it exact for
            with self.lock:
                if self._listening:
                    self._listening -= 1
                    self._rewatch()
            return
        with self.lock:
            waiters = self._tx_waiters if sending else self._rx_waiters
            waiter = allocate_lock()
            waiter.acquire()
            waiters.append(waiter)
            if sending:  # first, then look: a fast path now reports to us
                self.watch_take = True
            else:
                self.watch_put = True
            if self._worth_retrying(sending):
                waiters.remove(waiter)
                self._rewatch()
                return
            self.lock.release()
            try:
                woken = waiter.acquire(True, timeout)
            finally:
                self.lock.acquire()
            if not woken:
                with contextlib.suppress(ValueError):  # woken just as it timed out
                    waiters.remove(waiter)
                self._rewatch()

    def _worth_retrying(self, sending: bool) -> bool:
        if self.ended or not self.receiver_open:
            return True
        if sending:
            return len(self.items) < self.maxsize
        return bool(self.items)

    def clone(self, token: int) -> int:
        with self.lock:
            if token not in self.senders:
                self._refuse_closed("cannot clone a closed sender handle")
            new = self._next_token
            self._next_token += 1
            self.senders.add(new)
            return new

    def close_sender(self, token: int) -> None:
        with self.lock:
            if token not in self.senders:
                return
            self.senders.discard(token)
            if not self.senders and not self.ended:
                self.ended = True
                self.watch_put = True  # a send racing its own handle's close must hear of it
                self._wake_all()

    def handing_over(self, token: int) -> None:
        cannot_cross("a thread channel's sender handle cannot be pickled")

    def sender_open(self, token: int) -> bool:
        return token in self.senders

    def close_receiver(self) -> None:
        with self.lock:
            self.receiver_open = False
            self._wake_all()

    def stats(self) -> ChannelStats:
        with self.lock:
            sent, received = self.counts()
            return ChannelStats(
                waiting=len(self.items),
                senders=len(self.senders),
                receivers=int(self.receiver_open),
                sent=sent,
                received=received,
                unfinished=sent - self._done if self.joinable else 0,
                ended=self.ended,
                broken=False,
            )

    def counts(self) -> tuple[int, int]:
        """Items sent and received so far."""
        return (_tally(self.sent) + self._sent_more, _tally(self.received) + self._received_more)

    def task_done(self) -> None:
        with self.lock:
            if not self.joinable:
                not_joinable("task_done()")
            sent, received = self.counts()
            if self._done >= received:
                nothing_to_mark()
            self._done += 1
            if self._done == sent:
                self._all_done.notify_all()

    def unfinished(self) -> int:
        with self.lock:
            if not self.joinable:
                not_joinable("join()")
            return self.counts()[0] - self._done

    def join(self, timeout: float | None) -> bool:
        """Wait until every item sent is marked done; whether it happened within ``timeout``."""
        with self.lock:
            if not self.joinable:
                not_joinable("join()")
            return self._all_done.wait_for(lambda: self._done == self.counts()[0], timeout)

    # -- shared by the handles' slow paths ---------------------------------------------------

    def check_sendable(self, token: int) -> None:
        """Raise unless handle ``token`` may send now (called under the lock)."""
        if token not in self.senders:
            self._refuse_closed("this sender handle is closed")

    def nothing_left(self) -> None:
        """With no item to take: raise if none can come (called under the lock)."""
        if self.forked:
            cannot_cross("this thread channel was inherited by a forked process")
        if self.ended:
            raise EndOfChannel("every sender closed and the channel is drained")

    def after_put(self, item: object) -> None:
        """A fast path put ``item`` while ``watch_put`` was set: wake whoever waits for it."""
        with self.lock:
            if self.ended and self._withdraw(item):  # its (last) handle closed while it sent
                raise ChannelClosed("this sender handle was closed while it sent")
            self._changed(1, 0)

    def after_take(self) -> None:
        """A fast path took an item while ``watch_put`` was set: wake whoever waits for room."""
        with self.lock:
            self._changed(0, 1)

    def _withdraw(self, item: object) -> bool:
        """Take back an item that came after the end; False if a receiver was faster."""
        items = self.items
        while True:  # fast takers may shorten the deque meanwhile: then look again
            try:
                for i in range(len(items) - 1, -1, -1):
                    if items[i] is item:
                        del items[i]
                        self._sent_more -= 1
                        return True
            except IndexError:
                continue
            return False

    def _changed(self, put: int, taken: int) -> None:
        """Wake waiters for ``put`` new items or ``taken`` freed places; set the descriptors."""
        if put and self._rx_waiters:
            self._wake(self._rx_waiters, put)
        if taken and self._tx_waiters:
            self._wake(self._tx_waiters, taken)
        self._reconcile()

    def _wake_all(self) -> None:
        self._wake(self._rx_waiters, len(self._rx_waiters))
        self._wake(self._tx_waiters, len(self._tx_waiters))
        self._reconcile()

    def _wake(self, waiters: deque[LockType], count: int) -> None:
        for _ in range(min(count, len(waiters))):
            waiters.popleft().release()
        self._rewatch()

    def _reconcile(self) -> None:
        """Make each descriptor readable exactly while a retry may succeed.

        Unwatched, a descriptor may go stale; ``ready_fd`` makes it exact again first.
        """
        over = self.ended or not self.receiver_open
        if self.ready_signal is not None:
            if self.items or over:
                self.ready_signal.set()
            else:
                self.ready_signal.clear()
        if self.room_signal is not None:
            if len(self.items) < self.maxsize or over:
                self.room_signal.set()
            else:
                self.room_signal.clear()

    def _rewatch(self) -> None:
        signals = self._listening > 0
        self.watch_put = bool(self._rx_waiters) or signals or self.ended
        self.watch_take = bool(self._tx_waiters) or signals

    def _refuse_closed(self, message: str) -> NoReturn:
        if self.forked:
            cannot_cross("this thread channel was inherited by a forked process")
        raise ChannelClosed(message)

    def forget_after_fork(self) -> None:
        """In a forked child: the parent's threads and items stay behind; refuse every call."""
        self.forked = True
        self._reset()
        self.senders = set()

    def __reduce__(self) -> NoReturn:
        cannot_cross("a thread channel cannot be pickled")

    def __repr__(self) -> str:
        return f"thread:{id(self):#x}"


def _tally(counter: itertools.count[int]) -> int:
    """How many times ``next`` was called on ``counter`` (it reads no other way)."""
    return int(repr(counter)[6:-1])


_LIVE: weakref.WeakSet[ThreadCore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for core in list(_LIVE):
        core.forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
