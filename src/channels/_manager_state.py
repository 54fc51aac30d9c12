"""One manager-backed channel as the server holds it: a ledger, a deque of bytes, a lock.

The books are the shared ``Ledger``, over a plain array, with the calling
process's session number (see ``_manager_server``) as its identity. Items are
the serialized bytes the client made; the server never unpickles them.

Each method runs in the server thread of the connection that called it. A
blocked call wakes every ``POLL_SLICE`` (and whenever a client process goes
away) to look for dead peers and to check that its own caller is still there,
so an item is never handed to a client that hung up. It gives up after
``WINDOW`` seconds with "not yet", and the client asks again: a live server
always answers within a bounded time.

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

from ._core import POLL_SLICE
from ._errors import ChannelBroken, ChannelClosed, ChannelTimeout, EndOfChannel, WouldBlock
from ._ledger import BROKEN, BROKEN_RECEIVERS_GONE, BROKEN_SENDERS_GONE, ENDED, WORDS, Ledger

__all__ = ["WINDOW", "Caller", "ChannelState"]

#: The longest a server call waits before answering "not yet" (the client asks again).
WINDOW = 2.0

_OVER = ENDED | BROKEN


class Caller(Protocol):
    """Who is calling: the client process (its session number), and whether it hung up."""

    @property
    def session(self) -> int: ...

    def gone(self) -> bool: ...


class _Wait:
    """When a blocked call gives up: at the caller's deadline, or at the end of its window."""

    __slots__ = ("deadline", "window")

    def __init__(self, timeout: float | None) -> None:
        now = time.monotonic()
        self.deadline = None if timeout is None else now + max(0.0, timeout)
        self.window = now + WINDOW

    def next(self, timed_out: str) -> float | None:
        """Seconds to sleep now, or None once the window is over; at the deadline, time out."""
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            raise ChannelTimeout(timed_out)
        if now >= self.window:
            return None
        cap = min(POLL_SLICE, self.window - now)
        return cap if self.deadline is None else min(cap, self.deadline - now)


class ChannelState:
    """One channel inside the server (see the module docstring)."""

    __slots__ = (
        "_alive",
        "_receivers",
        "_senders",
        "cid",
        "first",
        "items",
        "ledger",
        "lock",
        "maxsize",
        "name",
        "not_empty",
        "not_full",
    )

    def __init__(
        self, cid: int, name: str | None, maxsize: int, alive: Callable[[int, int], bool]
    ) -> None:
        self.cid = cid
        self.name = name
        self.maxsize = maxsize
        self.ledger = Ledger(array("q", bytes(8 * WORDS)))
        self.first = self.ledger.initialise()
        self.items: deque[bytes] = deque()
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

    def send(
        self, caller: Caller, token: int, data: bytes, timeout: float | None, block: bool
    ) -> bool:
        """Append ``data``; False if the window passed while the channel stayed full."""
        wait = _Wait(timeout)
        ledger = self.ledger
        with self.lock:
            while True:
                if not ledger.is_open(token):
                    raise ChannelClosed("this sender handle is closed")
                if ledger.flags & BROKEN:
                    raise ChannelBroken(ledger.broken_reason)
                if not self.maxsize or len(self.items) < self.maxsize:
                    if (caller.session, token) not in self._senders:
                        ledger.note_sender(caller.session, 0, token, self._alive)
                        self._senders.add((caller.session, token))
                    self.items.append(data)
                    self.not_empty.notify()
                    return True
                if not block:
                    raise WouldBlock("the channel is full")
                if ledger.receivers_gone(self._alive):
                    ledger.mark_broken(BROKEN_RECEIVERS_GONE)
                    continue
                pause = wait.next("the channel stayed full until the timeout")
                if pause is None:
                    return False
                self.not_full.wait(pause)
                if caller.gone():
                    raise ChannelBroken("the sending client hung up")

    def recv(self, caller: Caller, timeout: float | None, block: bool) -> bytes | None:
        """Take the next item; None if the window passed with nothing to take."""
        wait = _Wait(timeout)
        ledger = self.ledger
        with self.lock:
            if caller.session not in self._receivers:
                ledger.note_receiver(caller.session, 0, self._alive)
                self._receivers.add(caller.session)
            while True:
                if self.items:
                    data = self.items.popleft()
                    self.not_full.notify()
                    return data
                if ledger.flags & ENDED:
                    raise EndOfChannel("every sender closed and the channel is drained")
                if not ledger.flags & BROKEN and ledger.senders_gone(self._alive):
                    ledger.mark_broken(BROKEN_SENDERS_GONE)
                if ledger.flags & BROKEN:
                    raise ChannelBroken(ledger.broken_reason)
                if not block:
                    raise WouldBlock("no item is ready")
                pause = wait.next("no item arrived before the timeout")
                if pause is None:
                    return None
                self.not_empty.wait(pause)
                if caller.gone():
                    self.not_empty.notify()  # pass a wake-up on: this caller takes nothing
                    raise ChannelBroken("the receiving client hung up")

    def open_handle(self) -> int:
        """A sender handle for a process that opens the channel by name; 0 if it is over."""
        with self.lock:
            if self.ledger.flags & _OVER:
                return 0  # generation 0 is never open: the opener may still drain what is left
            return self.ledger.open_handle()

    def clone(self, token: int) -> int:
        """A new sender handle, if ``token`` is open."""
        with self.lock:
            if not self.ledger.is_open(token):
                raise ChannelClosed("cannot clone a closed sender handle")
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
