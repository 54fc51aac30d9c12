"""What ``channels worker`` runs: items held until their results are out.

Each slot of this process takes a batch of ready items from the inbox (up to
``batch``), has one pool worker run the function on each, sends the results
to the outbox in one ``send_many``, and only then takes the next batch on that
receiver, which is what acknowledges the last one on ``redis``. So an item is
never acknowledged before its result is sent:

* a worker process that dies running an item (SIGKILL, ``os._exit``, a crash
  in C) costs nothing but time: the pool replaces it, and the items of the
  batch without a result run again on another worker (the shared ``Marks``
  say which item it died on; the items after it had not started). The item it
  died on has been started once more each time, up to ``max_tries`` times in
  all; an item that kills that many workers goes to the dead-letter channel
  as a ``DeadLetter`` (or, without one, stops the run as a failure);
* this whole process dying (a machine lost) leaves its batches
  unacknowledged: on ``redis`` they go to another receiver once its lease
  lapses. So a lost machine holds at most ``slots x batch`` items.

A slot takes at most as many items as its worker ran in about
``RELAY_BATCH_SECONDS`` the last time, so that slow items are not held back in one
slot while other workers (and machines) are idle; cheap items travel in full
batches, paying the round trips to redis and to the worker once per batch.
There are a few more slots than workers, so that a worker does not sit idle
while its slot sends results and takes the next batch.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Sequence
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
from .._timing import RELAY_BATCH_SECONDS, RELAY_POLL
from .batches import Marks, run_batch
from .pool import Pool
from .processes import exit_description
from .remote_errors import describe, unpack_exception

__all__ = ["DeadLetter", "Relay"]

T = TypeVar("T")


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

    ``pool`` must have been started with ``marks``'s counters (see
    ``batches``); there is one receiver per slot. ``say`` reports a crash or a
    dead letter in a line; ``failure`` is the first error that stopped the run
    (a function that raised with no dead-letter channel, a channel that
    broke), or None.
    """

    def __init__(
        self,
        fn: Callable[[object], object],
        function: str,
        pool: Pool,
        receivers: list[Receiver[object]],
        outbox: Sender[object],
        *,
        marks: Marks,
        batch: int,
        dead_letter: Sender[DeadLetter[object]] | None,
        max_tries: int,
        say: Callable[[str], None],
    ) -> None:
        self._fn = fn
        self._function = function
        self._pool = pool
        self._outbox = outbox
        self._marks = marks
        self._batch = batch
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
        #: The receivers that hold items not finished, which must not be acknowledged.
        self.holding: list[Receiver[object]] = []
        self._threads = [
            threading.Thread(
                target=self._slot, args=(n, rx), name=f"channels-worker-{n + 1}", daemon=True
            )
            for n, rx in enumerate(receivers)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Take no more items; the slots finish the batches they hold (or the pool is stopped)."""
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

    def _slot(self, slot: int, rx: Receiver[object]) -> None:
        try:
            self._relay(slot, rx)
        except BaseException as exc:  # a bug here must not pass for the end of the inbox
            with self._lock:
                self.holding.append(rx)
            self._fail(exc)

    def _relay(self, slot: int, rx: Receiver[object]) -> None:
        size = 1  # until the first batch shows how long an item takes
        while not self._stop.is_set():
            try:
                items = rx.recv_many(size, timeout=RELAY_POLL)
            except ChannelTimeout:
                continue
            except EndOfChannel:
                return
            except ChannelError as exc:
                self._fail(exc)
                return
            batch = _Batch(items)
            if not self._finish(slot, batch):
                with self._lock:
                    self.holding.append(rx)
                return
            self._mark_done(rx, len(items))
            if batch.ran:
                rate = batch.ran / max(batch.seconds, 1e-9)
                size = max(1, min(self._batch, int(RELAY_BATCH_SECONDS * rate)))

    def _finish(self, slot: int, batch: _Batch) -> bool:
        """Run ``batch`` until every result (or dead letter) is sent; False if they were not."""
        alone = False  # run the items one by one: the pool refused them as a batch
        while batch.pending:
            chunk = batch.pending[:1] if alone else batch.pending[:]
            self._marks.reset(slot)
            try:
                outcome = self._pool.apply_async(
                    run_batch, self._fn, [batch.items[i] for i in chunk], slot
                )
                while not outcome.wait(RELAY_POLL):
                    pass
                values, error, seconds = outcome.get(0)
            except PoolClosed:  # stopped while it ran: the batch goes back to the channel
                return False
            except PoolBroken as exc:  # not the items' fault: they go back too
                self._fail(exc)
                return False
            except WorkerCrashed as exc:
                if not self._crashed(slot, batch, chunk, exc):
                    return False
                continue
            except Exception as exc:  # the pool could not pickle the items or their results
                if len(chunk) > 1:
                    alone = True
                    continue
                batch.tries[chunk[0]] += 1
                if not self._give_up(batch, chunk[0], f"{type(exc).__name__}: {exc}", exc):
                    return False
                continue
            batch.ran += len(values)
            batch.seconds += seconds
            for index, value in zip(chunk, values, strict=False):
                batch.results[index] = value
            del batch.pending[: len(values)]
            if error is not None:
                failed = batch.pending[0]
                batch.tries[failed] += 1
                raised = unpack_exception(error[1])
                cause = f"{type(raised).__name__}: {raised}"
                if not self._give_up(batch, failed, cause, raised):
                    return False
        return self._send_out(batch)

    def _crashed(self, slot: int, batch: _Batch, chunk: list[int], exc: WorkerCrashed) -> bool:
        """A worker died running ``chunk``: blame the item it was on; False to stop."""
        started = max(1, min(self._marks.started(slot), len(chunk)))
        for index in chunk[:started]:
            batch.tries[index] += 1  # the ones before it ran, but their results died with it
        culprit = chunk[started - 1]
        tries, item, cause = batch.tries[culprit], batch.items[culprit], _crash_cause(exc)
        if tries < self._max_tries:
            with self._lock:
                self.retried += 1
            self._say(
                f"{cause} while running item {describe(item)}; running it again "
                f"(try {tries + 1} of {self._max_tries})"
            )
            return True
        return self._give_up(batch, culprit, cause, exc)

    def _give_up(self, batch: _Batch, index: int, cause: str, exc: BaseException) -> bool:
        """Keep a dead letter for the item at ``index``, or fail the run without a channel."""
        item, tries = batch.items[index], batch.tries[index]
        batch.pending.remove(index)
        if self._dead_letter is None:
            if isinstance(exc, WorkerCrashed):
                error = WorkerCrashed(
                    f"item {describe(item)} killed {tries} worker(s) (--max-tries "
                    f"{self._max_tries}; the last: {cause}) and there is no --dead-letter channel",
                    pid=exc.pid,
                    exitcode=exc.exitcode,
                )
                error.__cause__ = exc
                self._fail(error)
            else:
                self._fail(exc)
            return False
        batch.letters.append(DeadLetter(item, cause, tries, self._function, self._host))
        return True

    def _send_out(self, batch: _Batch) -> bool:
        """Send the batch's results, in the order of its items, then its dead letters."""
        results = [batch.results[i] for i in range(len(batch.items)) if i in batch.results]
        if results and not self._send(self._outbox.send_many, results):
            return False
        if batch.letters:
            assert self._dead_letter is not None  # _give_up keeps letters only then
            if not self._send(self._dead_letter.send_many, batch.letters):
                return False
        with self._lock:
            self.done += len(results)
            self.dead_lettered += len(batch.letters)
        for letter in batch.letters:
            self._say(
                f"item {describe(letter.item)} sent to the dead-letter channel after "
                f"{letter.tries} tries: {letter.cause}"
            )
        return True

    def _send(self, send_many: Callable[[list[T]], None], values: list[T]) -> bool:
        try:
            send_many(values)
        except ChannelError as exc:
            self._fail(exc)
            return False
        return True

    def _mark_done(self, rx: Receiver[object], count: int) -> None:
        """On a joinable inbox, mark the items done: that is what acknowledges them there."""
        for _ in range(count):
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


@final
class _Batch:
    """The items one slot took at once, and what became of each (by its place)."""

    def __init__(self, items: Sequence[object]) -> None:
        self.items = items
        #: The places of the items still to run, in order.
        self.pending = list(range(len(items)))
        self.tries = [0] * len(items)
        self.results: dict[int, object] = {}
        self.letters: list[DeadLetter[object]] = []
        #: Items run and the seconds the workers spent on them, to size the next batch.
        self.ran = 0
        self.seconds = 0.0


def _crash_cause(exc: WorkerCrashed) -> str:
    """``worker PID <how it ended>``."""
    return f"worker {exc.pid} {exit_description(exc.exitcode)}"
