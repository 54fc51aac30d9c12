"""The books and items of one ``thread`` channel: a deque under one lock.

Items are kept as they were sent (nothing is serialized), in a ``deque``
guarded by one ``threading.Lock``. The handles (``handles``) take that lock
themselves on their per-item path; everything slower (waiting, closing,
statistics) is here. Blocked threads sleep on two conditions of the same lock,
and asyncio tasks wait on descriptors (``Signal``) that the core keeps readable
exactly while a retry may succeed, so ``await`` waits on the event loop itself.

The core also answers the engine's ``Core`` protocol, so ``select`` and the
shared waiting code treat it like any other backend's.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import deque
from collections.abc import Sequence
from typing import Any, NoReturn

from ..._core import ChannelStats
from ..._errors import ChannelBroken, ChannelClosed, ConfigError, EndOfChannel
from ..._policy import not_joinable, nothing_to_mark
from ..._serialize import PICKLE, Serializer

__all__ = ["FIRST", "Signal", "ThreadCore", "cannot_cross"]

#: The token of the channel's own sender handle.
FIRST = 1

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


class ThreadCore:
    """One thread channel's state. Fields the handles read on their fast path are public.

    ``watch`` is true while anyone but a fast path cares about a change: a
    sleeping thread, or a descriptor an event loop may be waiting on. The
    handles call ``after_put`` / ``after_take`` only then.
    """

    __slots__ = (
        "__weakref__",
        "_all_done",
        "_done",
        "_next_token",
        "_not_empty",
        "_not_full",
        "_room_signal",
        "_rx_sleepers",
        "_tx_sleepers",
        "ended",
        "forked",
        "items",
        "joinable",
        "lock",
        "maxsize",
        "ready_signal",
        "received",
        "receiver_open",
        "senders",
        "sent",
        "watch",
    )

    def __init__(self, maxsize: int, joinable: bool) -> None:
        self.maxsize = maxsize
        self.joinable = joinable
        self.forked = False
        self._reset()
        _LIVE.add(self)

    def _reset(self) -> None:
        self.lock = threading.Lock()
        self.items: deque[object] = deque()
        self.senders: set[int] = {FIRST}
        self._next_token = FIRST + 1
        self.ended = False
        self.receiver_open = True
        self.sent = self.received = self._done = 0
        self.watch = False
        self._rx_sleepers = self._tx_sleepers = 0
        self._not_empty = threading.Condition(self.lock)
        self._not_full = threading.Condition(self.lock)
        self._all_done = threading.Condition(self.lock)
        self.ready_signal: Signal | None = None  # readable while an item (or the end) is there
        self._room_signal: Signal | None = None  # readable while a bounded channel has room

    # -- the engine's Core protocol (select, and the shared waiting code) -------------------

    @property
    def serializer(self) -> Serializer:
        return PICKLE  # never used: items are passed by reference

    @property
    def max_message_size(self) -> int | None:
        return None

    @property
    def first_token(self) -> int:
        return FIRST

    @property
    def shm_threshold(self) -> int:
        return 0

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
            before = len(self.items)
            self.items.extend(items[:room] if room < len(items) else items)
            self.sent += room
            if self.watch:
                self.after_put(before, room)
            return room

    def take(self, max_items: int, deadline: float | None) -> list[Any]:
        """Up to ``max_items`` ready items, oldest first; [] if none is; raise at the end."""
        with self.lock:
            items = self.items
            if not items:
                self.nothing_left()
                return []
            before = len(items)
            count = min(max_items, before)
            got = [items.popleft() for _ in range(count)]
            self.received += count
            if self.watch:
                self.after_take(before, count)
            return got

    def ready_fd(self, sending: bool) -> int | None:
        """A descriptor readable while a put (or a take) may succeed; None where puts never wait."""
        with self.lock:
            if self.forked:
                cannot_cross("this thread channel was inherited by a forked process")
            if sending:
                if not self.maxsize:
                    return None
                if self._room_signal is None:
                    self._room_signal = Signal()
                    self._update_room()
                    self.watch = True
                return self._room_signal.fileno()
            if self.ready_signal is None:
                self.ready_signal = Signal()
                self._update_ready()
                self.watch = True
            return self.ready_signal.fileno()

    def wait(self, sending: bool, timeout: float) -> None:
        """Sleep at most ``timeout`` seconds until a put (or a take) may succeed."""
        if timeout <= 0:
            return  # the descriptors are kept exact: nothing to clear
        with self.lock:
            if sending:
                if self.maxsize and len(self.items) >= self.maxsize and self.receiver_open:
                    self._tx_sleepers += 1
                    self.watch = True
                    try:
                        self._not_full.wait(timeout)
                    finally:
                        self._tx_sleepers -= 1
                        self._rewatch()
            elif not self.items and not self.ended and self.receiver_open:
                self._rx_sleepers += 1
                self.watch = True
                try:
                    self._not_empty.wait(timeout)
                finally:
                    self._rx_sleepers -= 1
                    self._rewatch()

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
                self._update_ready()
                self._update_room()
                self._not_empty.notify_all()
                self._not_full.notify_all()

    def handing_over(self, token: int) -> None:
        cannot_cross("a thread channel's sender handle cannot be pickled")

    def sender_open(self, token: int) -> bool:
        return token in self.senders

    def close_receiver(self) -> None:
        with self.lock:
            self.receiver_open = False
            self._update_ready()
            self._update_room()
            self._not_empty.notify_all()
            self._not_full.notify_all()

    def stats(self) -> ChannelStats:
        with self.lock:
            return ChannelStats(
                waiting=len(self.items),
                senders=len(self.senders),
                receivers=int(self.receiver_open),
                sent=self.sent,
                received=self.received,
                unfinished=self.sent - self._done if self.joinable else 0,
                ended=self.ended,
                broken=False,
            )

    def task_done(self) -> None:
        with self.lock:
            if not self.joinable:
                not_joinable("task_done()")
            if self._done >= self.received:
                nothing_to_mark()
            self._done += 1
            if self._done == self.sent:
                self._all_done.notify_all()

    def unfinished(self) -> int:
        with self.lock:
            if not self.joinable:
                not_joinable("join()")
            return self.sent - self._done

    def join(self, timeout: float | None) -> bool:
        """Wait until every item sent is marked done; whether it happened within ``timeout``."""
        with self.lock:
            if not self.joinable:
                not_joinable("join()")
            return self._all_done.wait_for(lambda: self._done == self.sent, timeout)

    # -- shared by the handles' slow paths ---------------------------------------------------

    def check_sendable(self, token: int) -> None:
        """Raise unless handle ``token`` may send now (called under the lock)."""
        if token not in self.senders:
            self._refuse_closed("this sender handle is closed")
        if self.ended:  # pragma: no cover (every handle is closed once it ended)
            raise ChannelClosed("the channel has ended")

    def nothing_left(self) -> None:
        """With no item to take: raise if none can come (called under the lock)."""
        if self.forked:
            cannot_cross("this thread channel was inherited by a forked process")
        if self.ended:
            raise EndOfChannel("every sender closed and the channel is drained")

    def after_put(self, before: int, count: int) -> None:
        """Wake what waits for items, ``count`` of them added to ``before`` (under the lock,
        only while ``watch``)."""
        if self._rx_sleepers:
            self._not_empty.notify(count)
        signal = self.ready_signal
        if not before and signal is not None:
            signal.set()
        if self._room_signal is not None and before + count >= self.maxsize:
            self._room_signal.clear()

    def after_take(self, before: int, count: int) -> None:
        """Wake what waits for room, ``count`` items taken of ``before`` (under the lock,
        only while ``watch``)."""
        was_full = self.maxsize and before >= self.maxsize
        if not was_full:
            if before == count and self.ready_signal is not None and not self.ended:
                self.ready_signal.clear()
            return
        if self._tx_sleepers:
            self._not_full.notify(count)
        if before == count and self.ready_signal is not None and not self.ended:
            self.ready_signal.clear()
        if self._room_signal is not None:
            self._room_signal.set()

    def _update_ready(self) -> None:
        signal = self.ready_signal
        if signal is not None:
            if self.items or self.ended or not self.receiver_open:
                signal.set()
            else:
                signal.clear()

    def _update_room(self) -> None:
        signal = self._room_signal
        if signal is not None:
            full = len(self.items) >= self.maxsize
            if not full or self.ended or not self.receiver_open:
                signal.set()
            else:
                signal.clear()

    def _rewatch(self) -> None:
        self.watch = bool(
            self._rx_sleepers or self._tx_sleepers or self.ready_signal or self._room_signal
        )

    def _refuse_closed(self, message: str) -> NoReturn:
        if self.forked:
            cannot_cross("this thread channel was inherited by a forked process")
        raise ChannelClosed(message)

    def forget_after_fork(self) -> None:
        """In a forked child: the parent's threads and items stay behind; refuse every call."""
        self.forked = True
        self._reset()
        self.senders = set()
        self.receiver_open = True

    def __reduce__(self) -> NoReturn:
        cannot_cross("a thread channel cannot be pickled")

    def __repr__(self) -> str:
        return f"thread:{id(self):#x}"


_LIVE: weakref.WeakSet[ThreadCore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for core in list(_LIVE):
        core.forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
