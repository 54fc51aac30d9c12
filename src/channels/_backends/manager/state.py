"""One manager-backed channel as the server holds it: a ledger, a deque of bytes, a lock.

The books are the shared ``Ledger``, over a plain array, with the calling
process's session number (see ``server``) as its identity. Items are
the serialized bytes the client made; the server never unpickles them.

Each method runs in the server thread of the connection that called it.
``put`` and ``take`` never wait; ``wait`` does, waking every ``POLL_SLICE`` (and
whenever a client process goes away) to look for dead peers, and answers within
``ANSWER_WINDOW`` seconds at most, so a live server always answers in a bounded time.

``put`` and ``take`` only *stage* their items: put items hold room but no
receiver sees them, taken items leave the queue but still count as in it. The
client's ``commit`` makes them final; ``abort`` (its connection closed first)
undoes them, taken items going back to the front. See ``core`` for why.

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

from ..._engine.conditions import (
    Broken,
    check_clonable,
    check_sendable,
    lost_unfinished,
    not_joinable,
    nothing_left,
    nothing_to_mark,
)
from ..._engine.ledger import (
    BROKEN,
    ENDED,
    WORDS,
    Ledger,
)
from ..._timing import ANSWER_WINDOW, POLL_SLICE

__all__ = ["Caller", "ChannelState"]


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
        "inflight",
        "items",
        "joinable",
        "ledger",
        "lock",
        "maxsize",
        "name",
        "not_empty",
        "not_full",
        "received",
        "reserved",
        "sent",
        "users",
        "waits_for_sender",
    )

    def __init__(
        self,
        cid: int,
        name: str | None,
        maxsize: int,
        alive: Callable[[int, int], bool],
        joinable: bool = False,
        *,
        with_sender: bool = True,
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
        self.reserved = 0  # items of staged puts: they hold room, no receiver sees them
        self.inflight = 0  # items of staged takes: out of the queue, not yet received
        #: Sessions that used the channel: they may still ask for its counts once it is gone.
        self.users: set[int] = set()
        # Opened by a receiver before any sender: the first handle is a placeholder that
        # keeps it from ending, given up when the first sender opens one of its own.
        self.waits_for_sender = not with_sender
        self.lock = threading.Lock()
        self.not_empty = threading.Condition(self.lock)
        self.not_full = threading.Condition(self.lock)
        self._alive = alive
        self._senders: set[tuple[int, int]] = set()  # (session, token) in the ledger
        self._receivers: set[int] = set()

    @property
    def finished(self) -> bool:
        """Ended or broken, drained and, if joinable, every item marked done: nothing is left."""
        return (
            bool(self.ledger.flags & _OVER)
            and not self.items
            and not self.reserved
            and not self.inflight
            and (not self.joinable or self.done == self.sent)
        )

    def put(self, caller: Caller, token: int, items: list[bytes]) -> int:
        """Stage as many of ``items`` as fit now (``commit_put`` makes them final); how many."""
        ledger = self.ledger
        with self.lock:
            check_sendable(ledger, token)
            if (caller.session, token) not in self._senders:
                ledger.note_sender(caller.session, 0, token, self._alive)
                self._senders.add((caller.session, token))
                self.users.add(caller.session)
            if not self.maxsize:
                staged = len(items)
            else:
                room = self.maxsize - len(self.items) - self.reserved - self.inflight
                staged = max(0, min(len(items), room))
            self.reserved += staged
            return staged

    def commit_put(self, items: list[bytes]) -> None:
        """Make a staged put final: its items join the queue."""
        with self.lock:
            self.reserved -= len(items)
            self.items.extend(items)
            self.sent += len(items)
            self.not_empty.notify_all()

    def abort_put(self, count: int) -> None:
        """Undo a staged put: give its room back."""
        with self.lock:
            self.reserved -= count
            self.wake_all()

    def take(self, caller: Caller, max_items: int) -> list[bytes]:
        """Stage up to ``max_items`` ready items (``commit_take`` makes it final); [] if none is."""
        ledger = self.ledger
        with self.lock:
            if caller.session not in self._receivers:
                ledger.note_receiver(caller.session, 0, self._alive)
                self._receivers.add(caller.session)
                self.users.add(caller.session)
            items = self.items
            if items:
                got = [items.popleft() for _ in range(min(max_items, len(items)))]
                self.inflight += len(got)
                return got
            if self.reserved or self.inflight:
                return []  # items may still come (or come back): not the end yet
            if not ledger.flags & _OVER and ledger.senders_gone(self._alive):
                ledger.mark_broken(Broken.SENDERS_GONE)
            nothing_left(ledger)
            return []

    def commit_take(self, session: int, count: int) -> None:
        """Make a staged take of ``count`` items by ``session`` final."""
        with self.lock:
            self.inflight -= count
            self.received += count
            if self.joinable:
                self.held[session] = self.held.get(session, 0) + count
            self.wake_all()  # room for senders; the end, if that was the last item

    def abort_take(self, items: list[bytes]) -> None:
        """Undo a staged take: its items go back to the front, in order."""
        with self.lock:
            self.inflight -= len(items)
            self.items.extendleft(reversed(items))
            self.wake_all()

    def wait(self, sending: bool, timeout: float) -> None:
        """Wait until a put (or a take) may succeed, at most ``timeout`` (and one window).

        Every slice it looks for dead peers: a full channel whose receivers all
        died breaks, and so does an empty one whose senders all died.
        """
        end = time.monotonic() + min(max(0.0, timeout), ANSWER_WINDOW)
        ledger = self.ledger
        with self.lock:
            while True:
                over = ledger.flags & _OVER
                # While items are staged their fate is open (a dead peer's commit may
                # still be on its way): judge neither the end nor the peers' deaths.
                staged = self.reserved or self.inflight
                if sending:
                    if over or not self.maxsize:
                        return
                    if len(self.items) + self.reserved + self.inflight < self.maxsize:
                        return
                    if not staged and ledger.receivers_gone(self._alive):
                        ledger.mark_broken(Broken.RECEIVERS_GONE)
                        return
                elif self.items or (not staged and over):
                    return
                elif not staged and ledger.senders_gone(self._alive):
                    ledger.mark_broken(Broken.SENDERS_GONE)
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
                ledger.open_handles - self.waits_for_sender,
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
            token = self.ledger.open_handle()
            if self.waits_for_sender:  # a real sender now keeps it open: drop the placeholder
                self.waits_for_sender = False
                self.ledger.close_handle(self.first)
            return token

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
            self.users.discard(session)
            self.wake_all()

    def wake_all(self) -> None:
        """Wake every waiter to look again; the caller holds the lock."""
        self.not_empty.notify_all()
        self.not_full.notify_all()

    def __repr__(self) -> str:
        return f"<channel {self.cid} {self.name or '(anonymous)'}: {len(self.items)} items>"
