"""One manager-backed channel as the server holds it: a ledger, a deque of bytes, a lock.

The books are the shared ``Ledger``, over a plain array, with the calling
process's session number (see ``server``) as its identity. Items are
the serialized bytes the client made; the server never unpickles them.

Each method runs in the server thread of the connection that called it.
``put`` and ``take`` never wait; ``wait`` does, waking every ``POLL_SLICE`` (and
whenever a client process goes away) to look for dead peers, and answers within
``WINDOW`` seconds at most, so a live server always answers in a bounded time.

When every process that sent on an open handle has died, the channel breaks,
as the shared ``Ledger`` decides for every backend: a process that only holds a
handle does not keep the channel alive.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections import deque
from collections.abc import Callable
from typing import Protocol

from ..._core import POLL_SLICE
from ..._ledger import BROKEN, BROKEN_RECEIVERS_GONE, BROKEN_SENDERS_GONE, ENDED, WORDS, Ledger
from ..._policy import (
    check_clonable,
    check_sendable,
    lost_unfinished,
    not_joinable,
    nothing_left,
    nothing_to_mark,
)

__all__ = ["WINDOW", "Caller", "ChannelState"]

#: The longest a server call waits before answering "not yet" (the client asks again).
WINDOW = 2.0

_OVER = ENDED | BROKEN


class Caller(Protocol):
    """Who is calling: the client process (its session number), and whether it hung up."""

    @property
    def session(self) -> int: ...

    def gone(self) -> bool: ...


class ChannelState:
    """One channel inside the server (see the module docstring)."""

    __slots__ = (
        "_alive",
        "_receivers",
        "_senders",
        "cid",
        "done",
        "first",
        "held",
        "items",
        "joinable",
        "ledger",
        "lock",
        "maxsize",
        "name",
        "not_empty",
        "not_full",
        "received",
        "sent",
    )

    def __init__(
        self,
        cid: int,
        name: str | None,
        maxsize: int,
        alive: Callable[[int, int], bool],
        joinable: bool = False,
    ) -> None:
        self.cid = cid
        self.joinable = joinable
        self.done = 0
        self.held: dict[int, int] = {}  # session -> items taken, not marked done
        self.name = name
        self.maxsize = maxsize
        self.ledger = Ledger(array("q", bytes(8 * WORDS)))
        self.first = self.ledger.initialise()
        self.items: deque[bytes] = deque()
        self.sent = 0
        self.received = 0
        self.lock = threading.Lock()
        self.not_empty = threading.Condition(self.lock)
        self.not_full = threading.Condition(self.lock)
        self._alive = alive
        self._senders: set[tuple[int, int]] = set()  # (session, token) in the ledger
        self._receivers: set[int] = set()

    @property
    def finished(self) -> bool:
        """Ended or broken, and drained: nothing can happen to it any more."""
        return bool(self.ledger.flags & _OVER) and not self.items

    def put(self, caller: Caller, token: int, items: list[bytes]) -> int:
        """Append as many of ``items`` as fit now; return how many."""
        ledger = self.ledger
        with self.lock:
            check_sendable(ledger, token)
            if (caller.session, token) not in self._senders:
                ledger.note_sender(caller.session, 0, token, self._alive)
                self._senders.add((caller.session, token))
            room = len(items) if not self.maxsize else self.maxsize - len(self.items)
            taken = items[: max(0, room)]
            self.items.extend(taken)
            self.sent += len(taken)
            if taken:
                self.not_empty.notify_all()
            return len(taken)

    def take(self, caller: Caller, max_items: int) -> list[bytes]:
        """Take up to ``max_items`` items now; [] if none is ready."""
        ledger = self.ledger
        with self.lock:
            if caller.session not in self._receivers:
                ledger.note_receiver(caller.session, 0, self._alive)
                self._receivers.add(caller.session)
            items = self.items
            if items:
                got = [items.popleft() for _ in range(min(max_items, len(items)))]
                self.received += len(got)
                if self.joinable:
                    self.held[caller.session] = self.held.get(caller.session, 0) + len(got)
                self.not_full.notify_all()
                return got
            if not ledger.flags & _OVER and ledger.senders_gone(self._alive):
                ledger.mark_broken(BROKEN_SENDERS_GONE)
            nothing_left(ledger)
            return []

    def wait(self, sending: bool, timeout: float) -> None:
        """Wait until a put (or a take) may succeed, at most ``timeout`` (and one window).

        Every slice it looks for dead peers: a full channel whose receivers all
        died breaks, and so does an empty one whose senders all died.
        """
        end = time.monotonic() + min(max(0.0, timeout), WINDOW)
        ledger = self.ledger
        with self.lock:
            while not ledger.flags & _OVER:
                if sending:
                    if not self.maxsize or len(self.items) < self.maxsize:
                        return
                    if ledger.receivers_gone(self._alive):
                        ledger.mark_broken(BROKEN_RECEIVERS_GONE)
                        return
                else:
                    if self.items:
                        return
                    if ledger.senders_gone(self._alive):
                        ledger.mark_broken(BROKEN_SENDERS_GONE)
                        return
                left = end - time.monotonic()
                if left <= 0:
                    return
                (self.not_full if sending else self.not_empty).wait(min(left, POLL_SLICE))

    def stats(self) -> tuple[int, ...]:
        """(waiting, senders, receivers, sent, received, unfinished, ended, broken)."""
        ledger = self.ledger
        with self.lock:
            flags = ledger.flags
            return (
                len(self.items),
                ledger.open_handles,
                ledger.receiver_count(self._alive),
                self.sent,
                self.received,
                self.sent - self.done if self.joinable else 0,
                int(bool(flags & ENDED)),
                int(bool(flags & BROKEN)),
            )

    def task_done(self, session: int) -> None:
        """Mark one item ``session`` took as done."""
        with self.lock:
            if not self.joinable:
                not_joinable("task_done()")
            if not self.held.get(session):
                nothing_to_mark()
            self.held[session] -= 1
            self.done += 1

    def unfinished(self) -> int:
        """Items sent and not marked done; ``ChannelBroken`` if a dead receiver held some."""
        with self.lock:
            if not self.joinable:
                not_joinable("join()")
            lost = sum(n for s, n in self.held.items() if n and not self._alive(s, 0))
            if lost:
                lost_unfinished(lost)
            return self.sent - self.done

    def open_handle(self) -> int:
        """A sender handle for a process that opens the channel by name; 0 if it is over."""
        with self.lock:
            if self.ledger.flags & _OVER:
                return 0  # generation 0 is never open: the opener may still drain what is left
            return self.ledger.open_handle()

    def clone(self, token: int) -> int:
        """A new sender handle, if ``token`` is open."""
        with self.lock:
            check_clonable(self.ledger, token)
            return self.ledger.open_handle()

    def close_sender(self, token: int) -> None:
        """Close handle ``token``; the last close ends the channel and wakes every waiter."""
        with self.lock:
            if self.ledger.close_handle(token):
                self.wake_all()
            self._senders = {s for s in self._senders if s[1] != token}

    def sender_open(self, token: int) -> bool:
        """Whether handle ``token`` is open."""
        return self.ledger.is_open(token)

    def note_holder(self, token: int, ident: int, stamp: int) -> None:
        """Count ``ident`` as a sender of ``token`` (a child handed it as it started).

        Its death then breaks the channel like any sender's; a handle closed
        since counts no sender. Waiters look again at once, in case it is dead.
        """
        with self.lock:
            if self.ledger.is_open(token) and not self.ledger.flags & _OVER:
                self.ledger.note_sender(ident, stamp, token, self._alive)
                self.wake_all()

    def close_receiver(self, session: int) -> None:
        """Forget ``session`` as a receiver."""
        with self.lock:
            self.ledger.forget_receiver(session)
            self._receivers.discard(session)

    def forget(self, session: int) -> None:
        """A process left: wake every waiter to look for dead peers now."""
        with self.lock:
            self._receivers.discard(session)
            self.wake_all()

    def wake_all(self) -> None:
        """Wake every waiter to look again; the caller holds the lock."""
        self.not_empty.notify_all()
        self.not_full.notify_all()

    def __repr__(self) -> str:
        return f"<channel {self.cid} {self.name or '(anonymous)'}: {len(self.items)} items>"
