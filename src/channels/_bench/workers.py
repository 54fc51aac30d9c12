"""What the benchmark's child processes run: producers, consumers and echoes.

A producer builds its items once and sends them over and over (small ints
count up), so that the time is the transport's, not the item's making. A
consumer of large items reads one byte of every page of each, so that a
transport cannot look fast by never delivering the memory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from multiprocessing.queues import Queue as MPQueue

from .._errors import EndOfChannel
from .._protocols import Receiver, Sender
from .optional import numpy
from .primitives import RawEnds
from .processes import StartLine

__all__ = [
    "Items",
    "channel_consumer",
    "channel_echo",
    "channel_producer",
    "raw_consumer",
    "raw_echo",
    "raw_producer",
    "touch",
]

_PAGE = 4096


@dataclass(frozen=True)
class Items:
    """What a producer sends.

    Attributes:
        size: bytes per item; 0 sends small ints.
        batch: items per call; 1 sends one at a time.
        large: send a numpy array of ``size`` bytes when numpy is installed (else
            bytes), and have the consumer touch every page of it.
        tuples: send small tuples (an int, a short str, a float) instead of ints.
    """

    size: int
    batch: int = 1
    large: bool = False
    tuples: bool = False

    def payload(self) -> object:
        """One item, made once and sent many times."""
        if self.tuples:
            return (1, "item", 2.5)
        if self.large:
            np = numpy()
            if np is not None:
                return np.ones(self.size, dtype="uint8")
        return b"x" * self.size if self.size else 1

    def batches(self, n: int) -> list[tuple[list[object], int]]:
        """``n`` items as (batch, times to send it): full batches, then the rest."""
        full, rest = divmod(n, self.batch)

        def make(k: int) -> list[object]:
            # Distinct objects: pickle would send one object repeated k times only once.
            if self.tuples:
                return [(i, "item", 2.5) for i in range(k)]
            return [self.payload() for _ in range(k)] if self.size or self.large else [*range(k)]

        plan = [(make(self.batch), full)] if full else []
        if rest:
            plan.append((make(rest), 1))
        return plan


def touch(item: object) -> int:
    """Read one byte of every page of ``item`` (bytes-like), so that all of it is mapped."""
    return sum(memoryview(item).cast("B")[::_PAGE])  # type: ignore[arg-type]


def raw_producer(ends: RawEnds, n: int, items: Items, start: StartLine) -> None:
    """Send ``n`` items on a baseline."""
    if items.batch > 1:
        put_list = ends.batch_putter()
        plan = items.batches(n)
        start.wait()
        for batch, times in plan:
            for _ in range(times):
                put_list(batch)
        return
    put = ends.putter()
    payload = items.payload()
    start.wait()
    if items.size or items.large or items.tuples:
        for _ in range(n):
            put(payload)
    else:
        for i in range(n):
            put(i)


def raw_consumer(
    ends: RawEnds, items: Items, start: StartLine, results: MPQueue[tuple[int, float]]
) -> None:
    """Take items from a baseline until a poison pill; report the count and the time."""
    clock = time.monotonic
    count, last = 0, 0.0
    if items.batch > 1:
        get_list = ends.batch_getter(items.batch)
        start.wait()
        while True:
            got = get_list()
            if got and got[-1] is None:  # pills come after every item, so only at the end
                pills = len(got) - len([x for x in got if x is not None])
                if len(got) > pills:
                    count += len(got) - pills
                    last = clock()
                put = ends.putter()
                for _ in range(pills - 1):  # another consumer's: give them back
                    put(None)
                break
            count += len(got)
            last = clock()
        results.put((count, last))
        return
    get = ends.getter()
    start.wait()
    if items.large:
        while (item := get()) is not None:
            touch(item)
            count += 1
            last = clock()
    else:
        while get() is not None:
            count += 1
            last = clock()
    results.put((count, last))


def channel_producer(tx: Sender[object], n: int, items: Items, start: StartLine) -> None:
    """Send ``n`` items on a channel, then close the sender."""
    with tx:
        if items.batch > 1:
            send_many = tx.send_many
            plan = items.batches(n)
            start.wait()
            for batch, times in plan:
                for _ in range(times):
                    send_many(batch)
            return
        send = tx.send
        payload = items.payload()
        start.wait()
        if items.size or items.large or items.tuples:
            for _ in range(n):
                send(payload)
        else:
            for i in range(n):
                send(i)


def channel_consumer(
    rx: Receiver[object], items: Items, start: StartLine, results: MPQueue[tuple[int, float]]
) -> None:
    """Take items from a channel until its end; report the count and the time."""
    clock = time.monotonic
    count, last = 0, 0.0
    start.wait()
    if items.batch > 1:
        recv_many, batch = rx.recv_many, items.batch
        while True:
            try:
                count += len(recv_many(batch))
            except EndOfChannel:
                break
            last = clock()
    elif items.large:
        for item in rx:
            touch(item)
            count += 1
            last = clock()
    else:
        for _ in rx:
            count += 1
            last = clock()
    results.put((count, last))


def raw_echo(requests: RawEnds, replies: RawEnds) -> None:
    """Send back every item until a poison pill."""
    get, put = requests.getter(), replies.putter()
    while (item := get()) is not None:
        put(item)


def channel_echo(requests: Receiver[object], replies: Sender[object]) -> None:
    """Send back every item until the requests end."""
    with replies:
        for item in requests:
            replies.send(item)
