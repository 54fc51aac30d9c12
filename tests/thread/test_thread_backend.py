"""What only the thread backend promises: items by reference, no crossing to another process,
no serializer, and sync threads beside asyncio tasks with no helper thread."""

from __future__ import annotations

import asyncio
import os
import pickle
import selectors
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import channels
from channels import ChannelClosed, ConfigError, EndOfChannel, ThreadChannel
from channels._backends.thread.core import ThreadCore
from channels._backends.thread.handles import ThreadSender

from support import WAIT, join, open_for, start

PROCESS_BACKEND = "use a process backend"


def _core(ch: channels.Channel[Any]) -> ThreadCore:
    assert isinstance(ch, ThreadChannel)
    sender = ch.sender
    assert isinstance(sender, ThreadSender)
    return sender._core  # pyright: ignore[reportPrivateUsage]


def _lockless(ch: channels.Channel[Any], on: bool) -> channels.Channel[Any]:
    """Take the lock on every step (as on a free-threaded build) unless ``on``."""
    if not on:
        core = _core(ch)
        core.fast_put = core.fast_take = False
    return ch


# -- by reference ----------------------------------------------------------------------


def test_the_receiver_gets_the_very_object_sent() -> None:
    ch = channels.open_channel[object]("thread")
    lock, item, batch = threading.Lock(), {"key": [1, 2]}, [object(), object()]
    ch.send(item)
    ch.send_nowait(lock)  # nothing is pickled, so even a lock travels
    ch.send_many(batch)
    assert ch.recv(timeout=WAIT) is item
    assert ch.recv_nowait() is lock
    got = ch.recv_many(5, timeout=WAIT)
    assert [id(x) for x in got] == [id(x) for x in batch]
    ch.send(item)

    async def main() -> object:
        await ch.asend(lock)
        first = await ch.arecv(timeout=WAIT)
        assert first is item
        return await ch.arecv()

    assert asyncio.run(main()) is lock
    ch.close()


# -- refused options and crossings -----------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "why"),
    [
        ("serializer", "json", "by reference"),
        ("context", "spawn", "start method"),
        ("shm_threshold", 1024, "shared memory"),
        ("max_message_size", 64, "no size"),
        ("spill_dir", "/tmp", "in memory"),
    ],
)
def test_options_a_thread_channel_cannot_honour_are_refused(
    option: str, value: object, why: str
) -> None:
    options: dict[str, Any] = {option: value}
    with pytest.raises(ConfigError, match=why) as info:
        channels.open_channel[int]("thread", **options)
    assert PROCESS_BACKEND in str(info.value)
    with pytest.raises(ConfigError, match=why):
        channels.open_channel[int](f"thread://?{option}={value}")
    with pytest.raises(ConfigError, match=why):
        ThreadChannel[int](**options)


def test_unknown_options_and_a_bad_maxsize_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="takes: joinable, maxsize"):
        channels.open_channel[int]("thread", address="localhost:1")
    with pytest.raises(ConfigError, match="maxsize"):
        ThreadChannel[int](maxsize=-1)


def test_a_thread_channel_has_no_address_to_join() -> None:
    with pytest.raises(ConfigError, match="use open_channel"):
        channels.open_sender[int]("thread")
    with pytest.raises(ConfigError, match="use open_channel"):
        channels.open_receiver[int]("thread")


def test_no_part_of_a_thread_channel_pickles() -> None:
    ch = channels.open_channel[int]("thread")
    clone = ch.clone()
    for part in (ch, ch.sender, ch.receiver, clone):
        with pytest.raises(ConfigError, match="cannot cross to another process") as info:
            pickle.dumps(part)
        assert PROCESS_BACKEND in str(info.value)
    clone.close()
    ch.close()


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_process_started_with_it_is_refused(method: str) -> None:
    ch = channels.open_channel[int]("thread")
    with pytest.raises(ConfigError, match=PROCESS_BACKEND):
        start(method, _send_one, ch.sender)  # refused as it pickles the handle for the child
    ch.close()


def _send_one(sender: channels.Sender[int]) -> None:
    try:
        sender.send(1)
    except ConfigError as exc:
        os._exit(5 if PROCESS_BACKEND in str(exc) else 6)


def _recv_one(receiver: channels.Receiver[int]) -> None:
    try:
        receiver.recv(timeout=1)
    except ConfigError as exc:
        os._exit(5 if PROCESS_BACKEND in str(exc) else 6)


def test_a_forked_child_cannot_use_what_it_inherited() -> None:
    ch = channels.open_channel[int]("thread")
    ch.send(1)
    children = [start("fork", _send_one, ch.sender), start("fork", _recv_one, ch.receiver)]
    assert join(*children) == [5, 5]
    assert ch.recv(timeout=WAIT) == 1  # the parent's channel is untouched
    ch.close()


# -- sync and asyncio on one channel, no helper thread ---------------------------------


def _new_threads_while(
    awaitable_factory: Any, known: set[threading.Thread]
) -> tuple[Any, set[threading.Thread]]:
    """Run ``awaitable_factory()`` on a fresh loop; the threads seen meanwhile not in ``known``.

    (A helper pool's threads, once started, stay alive and idle: a pool that other
    tests started is in ``known``, which is why the tests also check the descriptor.)
    """
    seen: set[threading.Thread] = set()

    async def main() -> Any:
        stop = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():
                seen.update(threading.enumerate())
                await asyncio.sleep(0.002)

        watcher = asyncio.ensure_future(watch())
        try:
            return await asyncio.wait_for(awaitable_factory(), WAIT)
        finally:
            stop.set()
            await watcher

    return asyncio.run(main()), seen - known


@pytest.mark.parametrize("fast", [True, False])
def test_a_sync_producer_and_an_asyncio_consumer_with_no_helper_thread(fast: bool) -> None:
    ch = _lockless(channels.open_channel[int]("thread"), fast)
    tx = ch.clone()
    ch.close()

    def produce() -> None:
        with tx:
            for i in range(300):
                tx.send(i)
                if i % 50 == 0:
                    time.sleep(0.02)  # the consumer waits, on its loop, many times

    producer = threading.Thread(target=produce)
    known = {*threading.enumerate(), producer}
    producer.start()

    async def consume() -> list[int]:
        return [item async for item in ch]

    got, new = _new_threads_while(consume, known)
    producer.join(WAIT)
    assert got == list(range(300))
    assert new == set()  # this thread and the producer only: nothing waits for the loop
    assert _core(ch).ready_signal is not None  # the loop waited on the channel's descriptor


@pytest.mark.parametrize("fast", [True, False])
def test_an_asyncio_producer_and_a_sync_consumer_with_no_helper_thread(fast: bool) -> None:
    ch = _lockless(channels.open_channel[int]("thread", maxsize=2), fast)
    got: list[int] = []

    def consume() -> None:
        for item in ch.receiver:
            got.append(item)
            if item % 50 == 0:
                time.sleep(0.02)  # the channel stays full: asend waits on its loop

    consumer = threading.Thread(target=consume)
    known = {*threading.enumerate(), consumer}
    consumer.start()

    async def produce() -> None:
        async with ch.sender as tx:
            for i in range(200):
                await tx.asend(i, timeout=WAIT)
            await tx.asend_many(range(200, 300), timeout=WAIT)

    _, new = _new_threads_while(produce, known)
    consumer.join(WAIT)
    assert got == list(range(300))
    assert new == set()
    assert _core(ch).room_signal is not None  # the loop waited on the channel's descriptor


def test_select_and_aselect_mix_a_thread_channel_with_process_backends() -> None:
    local = channels.open_channel[str]("thread")
    queue = open_for("queue")
    pipe = open_for("pipe")
    threading.Timer(0.1, local.send, args=("late",)).start()
    assert channels.select(queue.receiver, local, pipe, timeout=WAIT) == (local, "late")
    queue.send("q")
    local.send("t")
    seen = {channels.select(local.receiver, queue.receiver, timeout=WAIT)[1] for _ in range(2)}
    assert seen == {"q", "t"}

    async def main() -> tuple[object, object]:
        asyncio.get_running_loop().call_later(0.1, local.send, "async")
        return await channels.aselect(pipe.receiver, local.receiver, timeout=WAIT)

    assert asyncio.run(main()) == (local.receiver, "async")
    for ch in (local, queue, pipe):
        ch.close()
    with pytest.raises(EndOfChannel):
        channels.select(local, queue, pipe, timeout=WAIT)


def test_the_receivers_descriptor_is_readable_exactly_while_an_item_or_the_end_is_there() -> None:
    ch = channels.open_channel[int]("thread")
    with selectors.DefaultSelector() as selector:
        selector.register(ch.receiver.fileno(), selectors.EVENT_READ)
        assert selector.select(0.05) == []
        threading.Timer(0.05, ch.send, args=(1,)).start()
        assert selector.select(WAIT)
        assert ch.recv_nowait() == 1  # taken on the lock-free path: still kept exact
        assert selector.select(0.05) == []
        ch.send(2)
        assert selector.select(0)
        ch.close()
        assert ch.recv(timeout=WAIT) == 2
        assert selector.select(0)  # the end is ready too
        with pytest.raises(EndOfChannel):
            ch.recv_nowait()


# -- many threads at once ----------------------------------------------------------------


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("maxsize", [0, 3])
def test_many_producer_threads_and_many_consumer_threads(fast: bool, maxsize: int) -> None:
    ch = _lockless(channels.open_channel[tuple[int, int]]("thread", maxsize=maxsize), fast)
    count, producers, consumers = 3000, 6, 4
    reports: list[list[tuple[int, int]]] = [[] for _ in range(consumers)]

    def produce(tag: int) -> None:
        with ch.clone() as tx:
            for i in range(count):
                tx.send((tag, i), timeout=WAIT)

    def shared(tag: int) -> None:  # several threads on the channel's own handle at once
        for i in range(count):
            ch.send((tag, i), timeout=WAIT)

    def consume(mine: list[tuple[int, int]]) -> None:
        while True:
            try:
                mine.extend(ch.recv_many(7, timeout=WAIT) if len(mine) % 2 else [ch.recv()])
            except EndOfChannel:
                return

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(producers)]
    threads += [threading.Thread(target=shared, args=(t,)) for t in (100, 101)]
    threads += [threading.Thread(target=consume, args=(r,)) for r in reports]
    for t in threads:
        t.start()
    for t in threads[: producers + 2]:
        t.join(WAIT)
    ch.close()
    for t in threads:
        t.join(WAIT)
    tags = [*range(producers), 100, 101]
    expected = sorted((t, i) for t in tags for i in range(count))
    assert sorted(x for r in reports for x in r) == expected
    for r in reports:  # FIFO per sender, as each consumer saw it
        for tag in tags:
            mine = [i for t, i in r if t == tag]
            assert mine == sorted(mine)
    stats = ch.stats()
    assert (stats.sent, stats.received, stats.waiting) == (len(tags) * count,) * 2 + (0,)


def _send_until_closed(ch: channels.Channel[int], sent: list[int]) -> None:
    i = 0
    while True:
        try:
            ch.send(i)
        except ChannelClosed:
            return
        sent.append(i)
        i += 1


def test_a_send_racing_its_handles_close_is_received_or_refused_never_lost() -> None:
    for _ in range(20):
        ch = channels.open_channel[int]("thread")
        sent: list[int] = []
        producer = threading.Thread(target=_send_until_closed, args=(ch, sent))
        producer.start()
        time.sleep(0.001)
        ch.close()
        producer.join(WAIT)
        assert list(ch) == sent


def test_an_item_that_lands_after_the_end_is_taken_back_and_refused() -> None:
    ch = channels.open_channel[str]("thread")
    core = _core(ch)
    # A send that checked its handle, then lost the processor while another thread
    # closed that handle (the last one), appends and counts after the end:
    ch.close()
    core.items.append("late")
    next(core.sent)
    with pytest.raises(ChannelClosed, match="closed while it sent"):
        core.after_put("late")
    assert list(ch) == []
    assert ch.stats().sent == 0


def test_a_blocked_sender_wakes_when_the_receiver_closes() -> None:
    ch = channels.open_channel[int]("thread", maxsize=1)
    ch.send(0)
    outcome: list[str] = []

    def send() -> None:
        try:
            ch.send(1, timeout=WAIT)
        except channels.ChannelError as exc:
            outcome.append(type(exc).__name__)

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(0.1)
    ch.receiver.close()
    sender.join(WAIT)
    assert outcome == ["ChannelBroken"]
    ch.close()


def test_join_waits_for_worker_threads() -> None:
    tasks = channels.open_channel[int]("thread", joinable=True)
    done: list[int] = []

    def work() -> None:
        for task in tasks.receiver:
            time.sleep(0.001)
            done.append(task)
            tasks.task_done()

    workers = [threading.Thread(target=work) for _ in range(3)]
    for w in workers:
        w.start()
    tasks.send_many(range(60))
    tasks.join(timeout=WAIT)
    assert sorted(done) == list(range(60))
    tasks.close()
    for w in workers:
        w.join(WAIT)


_WITHOUT_ANYIO = """
import asyncio, sys
sys.modules["anyio"] = None  # as where the trio extra is not installed
import channels

async def main() -> None:
    ch = channels.open_channel("thread", maxsize=1)
    tx, rx = ch.sender, ch.receiver
    tx.send(0)

    async def consume() -> list[int]:
        await asyncio.sleep(0.2)  # the producer's asend waits for room meanwhile
        return [await rx.arecv(timeout=5) for _ in range(3)]

    task = asyncio.create_task(consume())
    await tx.asend(1, timeout=5)
    await tx.asend(2, timeout=5)
    print(await task)

asyncio.run(main())
"""


def test_asyncio_faces_wait_without_anyio() -> None:
    """Waiting in asyncio needs nothing beyond the standard library on any backend."""
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_ANYIO],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0, 1, 2]"
