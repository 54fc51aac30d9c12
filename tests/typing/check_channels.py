"""What type checkers see of each public channel call.

mypy and pyright check this file (strict); pytest never runs it. Each
``assert_type`` fails the check if the inferred type drifts from what users
are promised. The misuses that must be rejected are in ``tests/test_typing.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, assert_type

from channels import (
    Channel,
    ChannelManager,
    ChannelStats,
    Endpoint,
    ManagerChannel,
    PipeChannel,
    QueueChannel,
    Receiver,
    Sender,
    SimpleQueueChannel,
    ThreadChannel,
    aselect,
    duplex,
    open_channel,
    select,
)


@dataclass(frozen=True)
class Job:
    """An item type of the user's own."""

    name: str
    size: int


# -- open_channel[T](spec=None, /, **options) --------------------------------------


def opening() -> None:
    assert_type(open_channel[int]("queue"), Channel[int])
    assert_type(open_channel[int]("queue://?maxsize=100"), Channel[int])
    assert_type(open_channel[bytes]("pipe"), Channel[bytes])
    assert_type(open_channel[int]("thread"), Channel[int])
    assert_type(open_channel[Job](), Channel[Job])
    assert_type(open_channel[str]("simplequeue", context="spawn"), Channel[str])
    assert_type(
        open_channel[int]("queue", maxsize=100, serializer="json", max_message_size=1 << 20),
        Channel[int],
    )
    assert_type(open_channel[int](None, spill_dir=None), Channel[int])
    assert_type(open_channel[list[int]]("queue"), Channel[list[int]])
    assert_type(open_channel[tuple[str, int]]("queue"), Channel[tuple[str, int]])
    assert_type(
        open_channel[int]("manager", address=("localhost", 5000), authkey=b"k", name="jobs"),
        Channel[int],
    )
    # Without [T] the item type is left open.
    assert_type(open_channel("queue"), Channel[Any])
    assert_type(open_channel(), Channel[Any])
    # A union is not a class, so open_channel[int | None] cannot carry it: it
    # gives Channel[Any]. Annotate the variable instead to keep the checks.
    maybe: Channel[int | None] = open_channel("queue")
    assert_type(maybe, Channel[int | None])


# -- backend classes ---------------------------------------------------------------


def backends() -> None:
    assert_type(PipeChannel[int](), PipeChannel[int])
    assert_type(PipeChannel[bytes](context="fork", max_message_size=1024), PipeChannel[bytes])
    assert_type(QueueChannel[int](maxsize=3), QueueChannel[int])
    assert_type(QueueChannel[Job](serializer="pickle", spill_dir="/tmp"), QueueChannel[Job])
    assert_type(SimpleQueueChannel[str](), SimpleQueueChannel[str])
    assert_type(ThreadChannel[int](maxsize=3, joinable=True), ThreadChannel[int])
    # Each backend is a Channel of its item type.
    using(ThreadChannel[int]())
    using(PipeChannel[int]())
    using(QueueChannel[int](maxsize=3))
    using(SimpleQueueChannel[int]())
    assert_type(ManagerChannel[int](), ManagerChannel[int])
    assert_type(
        ManagerChannel[Job](maxsize=3, address=("10.0.0.2", 5000), authkey=b"key", name="jobs"),
        ManagerChannel[Job],
    )
    assert_type(ManagerChannel[str](address="host:5000", serializer="json"), ManagerChannel[str])
    with ChannelManager(("127.0.0.1", 0), authkey="key") as manager:
        assert_type(manager, ChannelManager)
        assert_type(ManagerChannel[int](manager=manager, name="jobs"), ManagerChannel[int])
    using(ManagerChannel[int]())
    with QueueChannel[int]() as ch:
        assert_type(ch, QueueChannel[int])
        assert_type(ch.sender, Sender[int])
        assert_type(ch.receiver, Receiver[int])
        assert_type(ch.recv(), int)


# -- using a channel ---------------------------------------------------------------


def using(ch: Channel[int]) -> None:
    assert_type(ch.send(1), None)
    assert_type(ch.send(1, timeout=0.5), None)
    assert_type(ch.send(1, 2), None)
    assert_type(ch.send_nowait(1), None)
    assert_type(ch.recv(), int)
    assert_type(ch.recv(timeout=1.0), int)
    assert_type(ch.recv(None), int)
    assert_type(ch.recv_nowait(), int)
    assert_type(ch.closed, bool)
    assert_type(ch.close(), None)
    for item in ch:
        assert_type(item, int)
    assert_type(list(ch), list[int])
    with ch as same:
        assert_type(same, Channel[int])


def halves(ch: Channel[Job]) -> None:
    sender = ch.sender
    receiver = ch.receiver
    assert_type(sender, Sender[Job])
    assert_type(receiver, Receiver[Job])
    assert_type(ch.clone(), Sender[Job])
    assert_type(sender.clone(), Sender[Job])
    assert_type(sender.send(Job("a", 1)), None)
    assert_type(sender.send(Job("a", 1), timeout=None), None)
    assert_type(sender.send_nowait(Job("b", 2)), None)
    assert_type(sender.closed, bool)
    assert_type(receiver.recv(), Job)
    assert_type(receiver.recv(timeout=0.1), Job)
    assert_type(receiver.recv_nowait(), Job)
    assert_type(receiver.closed, bool)
    for job in receiver:
        assert_type(job, Job)
    with sender as s, receiver as r:
        assert_type(s, Sender[Job])
        assert_type(r, Receiver[Job])


# -- the whole channel stands where either half is wanted ---------------------------


def produce(out: Sender[int]) -> None:
    out.send(1)


def consume(inbox: Receiver[int]) -> int:
    return sum(inbox)


def whole_channel_as_either_half(ch: Channel[int]) -> None:
    produce(ch)
    produce(ch.sender)
    produce(ch.clone())
    assert_type(consume(ch), int)
    assert_type(consume(ch.receiver), int)


# -- variance: Sender is contravariant, Receiver covariant, Channel invariant -------


def wants_int_receiver(inbox: Receiver[int]) -> None: ...


def wants_bool_sender(out: Sender[bool]) -> None: ...


def variance(bools: Channel[bool], ints: Channel[int]) -> None:
    # A receiver of bools gives ints (bool is an int).
    wants_int_receiver(bools.receiver)
    wants_int_receiver(bools)
    # A sender that takes any int takes bools.
    wants_bool_sender(ints.sender)
    wants_bool_sender(ints)
    assert_type(consume(bools), int)


# -- duplex[A, B] and Endpoint ------------------------------------------------------


def two_way() -> None:
    client, server = duplex[Job, int]("pipe")
    assert_type(client, Endpoint[Job, int])
    assert_type(server, Endpoint[int, Job])
    assert_type(duplex[str, bytes](), tuple[Endpoint[str, bytes], Endpoint[bytes, str]])
    assert_type(
        duplex[str, bytes]("queue", maxsize=2), tuple[Endpoint[str, bytes], Endpoint[bytes, str]]
    )
    assert_type(duplex("pipe"), tuple[Endpoint[Any, Any], Endpoint[Any, Any]])
    assert_type(client.send(Job("a", 1)), None)
    assert_type(client.send_nowait(Job("a", 1)), None)
    assert_type(client.request(Job("a", 1)), int)
    assert_type(client.request(Job("a", 1), timeout=1.0), int)
    assert_type(server.recv(), Job)
    assert_type(server.recv(timeout=1.0), Job)
    assert_type(server.recv_nowait(), Job)
    assert_type(server.send(3), None)
    assert_type(server.clone(), Sender[int])
    assert_type(client.closed, bool)
    for job in server:
        assert_type(job, Job)
    with client as c:
        assert_type(c, Endpoint[Job, int])
    # An endpoint is a sender of what it sends and a receiver of what it gets.
    produce(duplex[int, str]()[0])
    assert_type(consume(duplex[str, int]()[0]), int)
    # Variance carries over: an Endpoint[int, bool] may serve as an Endpoint[bool, int].
    relay(duplex[int, bool]()[0])


def relay(end: Endpoint[bool, int]) -> None:
    assert_type(end.recv(), int)
    assert_type(end.send(True), None)


# -- batches, asyncio, select, stats ------------------------------------------------


def batches_and_stats(ch: Channel[int], rx: Receiver[int], tx: Sender[int]) -> None:
    assert_type(ch.recv_many(10), list[int])
    assert_type(ch.recv_many_nowait(10), list[int])
    assert_type(rx.recv_many(10, timeout=1.0), Sequence[int])
    assert_type(tx.send_many([1, 2]), None)
    assert_type(ch.stats(), ChannelStats)
    assert_type(rx.stats().waiting, int)
    assert_type(rx.fileno(), int)


async def asyncio_faces(ch: Channel[int], rx: Receiver[bool], words: Receiver[str]) -> None:
    assert_type(await ch.arecv(), int)
    assert_type(await ch.arecv_many(5), list[int])
    assert_type(await rx.arecv(timeout=1.0), bool)
    assert_type(aiter(rx), AsyncIterator[bool])
    assert_type(await ch.asend(1), None)
    assert_type(await ch.sender.asend_many([1]), None)
    async with ch.sender as tx:
        assert_type(tx, Sender[int])
    assert_type((await aselect(rx, words))[1], bool | str)


def selecting(a: Receiver[int], b: Receiver[str], c: Receiver[bytes]) -> None:
    assert_type(select(a), tuple[Receiver[int], int])
    assert_type(select(a, b)[1], int | str)
    assert_type(select(a, b, c, timeout=1.0)[1], int | str | bytes)
    assert_type(select(*[a, a, a, a, a])[1], int)
