"""What ``channels worker`` runs: items held here until their results are out.

This process takes each item from the inbox, has a pool worker run the
function on it, sends the result to the outbox, and only then takes the next
item on that receiver, which is what acknowledges the last one on ``redis``.
So an item is never acknowledged before its result is sent:

* a worker process that dies running an item (SIGKILL, ``os._exit``, a crash
  in C) costs nothing but time: the pool replaces it and the item runs again
  on another worker, up to ``max_tries`` times in all; an item that kills
  that many workers goes to the dead-letter channel as a ``DeadLetter`` (or,
  without one, stops the run as a failure);
* this whole process dying (a machine lost) leaves its items unacknowledged:
  on ``redis`` they go to another receiver once its lease lapses.

Each slot is one receiver and one thread, holding at most one item; there
are a few more slots than workers, so that a worker does not sit idle while
its slot sends a result and takes the next item.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar, final

from .._errors import (
    ChannelError,
    ChannelTimeout,
    EndOfChannel,
    PoolBroken,
    PoolClosed,
    WorkerCrashed,
)
from .._protocols import Receiver, Sender
from .pool import Pool
from .processes import exit_description
from .remote_errors import describe

__all__ = ["DeadLetter", "Relay"]

T = TypeVar("T")

# How often a slot waiting for an item or a result looks whether it should stop.
_POLL = 0.1


@final
@dataclass(frozen=True)
class DeadLetter(Generic[T]):
    """An item ``channels worker`` gave up on, as it sends it to ``--dead-letter``.

    Attributes:
        item: the item of the inbox, as it was received.
        cause: why: how the last worker running it died (``worker 4242 was
            killed by SIGKILL``), or the exception the function raised.
        tries: how many times it was started.
        function: the ``MODULE:FUNCTION`` that was run.
        host: the machine that gave up on it.
    """

    item: T
    cause: str
    tries: int
    function: str
    host: str


# Pickles name the public place, so a reader needs only ``channels``, whatever moves here.
DeadLetter.__module__ = "channels"


@final
class Relay:
    """The slots of one ``channels worker`` run: each takes, runs, sends, then takes again.

    ``say`` reports a crash or a dead letter in a line; ``failure`` is the
    first error that stopped the run (a function that raised with no
    dead-letter channel, a channel that broke), or None.
    """

    def __init__(
        self,
        fn: Callable[[object], object],
        function: str,
        pool: Pool,
        receivers: list[Receiver[object]],
        outbox: Sender[object],
        *,
        dead_letter: Sender[DeadLetter[object]] | None,
        max_tries: int,
        say: Callable[[str], None],
    ) -> None:
        self._fn = fn
        self._function = function
        self._pool = pool
        self._outbox = outbox
        self._dead_letter = dead_letter
        self._max_tries = max_tries
        self._say = say
        self._host = socket.gethostname()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._joinable: bool | None = None
        self.failure: BaseException | None = None
        self.done = 0
        self.retried = 0
        self.dead_lettered = 0
        #: The receivers that hold an item not finished, which must not be acknowledged.
        self.holding: list[Receiver[object]] = []
        self._threads = [
            threading.Thread(
                target=self._slot, args=(rx,), name=f"channels-worker-{n}", daemon=True
            )
            for n, rx in enumerate(receivers, 1)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Take no more items; the slots finish the items they hold (or the pool is stopped)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether the slots were told to stop (by ``stop``, or by a failure)."""
        return self._stop.is_set()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for every slot to end; return whether they all did."""
        for thread in self._threads:
            thread.join(timeout)
            timeout = 0.0
        return not any(thread.is_alive() for thread in self._threads)

    def _slot(self, rx: Receiver[object]) -> None:
        while not self._stop.is_set():
            try:
                item = rx.recv(timeout=_POLL)
            except ChannelTimeout:
                continue
            except EndOfChannel:
                return
            except ChannelError as exc:
                self._fail(exc)
                return
            if not self._finish(item):
                with self._lock:
                    self.holding.append(rx)
                return
            self._mark_done(rx)

    def _finish(self, item: object) -> bool:
        """Run ``item`` until its result (or dead letter) is sent; False if it was not."""
        tries = 0
        while True:
            tries += 1
            try:
                outcome = self._pool.apply_async(self._fn, item)
                while not outcome.wait(_POLL):
                    pass
                result = outcome.get(0)
            except PoolClosed:  # stopped while it ran: it goes back to the channel
                return False
            except PoolBroken as exc:  # not the item's fault: it goes back too
                self._fail(exc)
                return False
            except WorkerCrashed as exc:
                cause = _crash_cause(exc)
                if tries < self._max_tries:
                    with self._lock:
                        self.retried += 1
                    self._say(
                        f"{cause} while running item {describe(item)}; running it again "
                        f"(try {tries + 1} of {self._max_tries})"
                    )
                    continue
                return self._give_up(item, cause, tries, exc)
            except Exception as exc:
                return self._give_up(item, f"{type(exc).__name__}: {exc}", tries, exc)
            if not self._send(self._outbox, result):
                return False
            with self._lock:
                self.done += 1
            return True

    def _give_up(self, item: object, cause: str, tries: int, exc: Exception) -> bool:
        """Send ``item`` to the dead-letter channel, or fail the run without one."""
        shown = describe(item)
        if self._dead_letter is None:
            if isinstance(exc, WorkerCrashed):
                error = WorkerCrashed(
                    f"item {shown} killed {tries} worker(s) (--max-tries {self._max_tries}; "
                    f"the last: {cause}) and there is no --dead-letter channel",
                    pid=exc.pid,
                    exitcode=exc.exitcode,
                )
                error.__cause__ = exc
                self._fail(error)
            else:
                self._fail(exc)
            return False
        letter = DeadLetter(item, cause, tries, self._function, self._host)
        if not self._send(self._dead_letter, letter):
            return False
        with self._lock:
            self.dead_lettered += 1
        self._say(f"item {shown} sent to the dead-letter channel after {tries} tries: {cause}")
        return True

    def _send(self, sender: Sender[T], value: T) -> bool:
        try:
            sender.send(value)
        except ChannelError as exc:
            self._fail(exc)
            return False
        return True

    def _mark_done(self, rx: Receiver[object]) -> None:
        """On a joinable inbox, mark the item done: that is what acknowledges it there."""
        if self._joinable is False:
            return
        try:
            rx.task_done()
        except ChannelError as exc:
            if type(exc) is not ChannelError or self._joinable:
                self._fail(exc)
            self._joinable = False
            return
        self._joinable = True

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self.failure is None:
                self.failure = exc
        self._stop.set()


def _crash_cause(exc: WorkerCrashed) -> str:
    """``worker PID <how it ended>``."""
    return f"worker {exc.pid} {exit_description(exc.exitcode)}"
