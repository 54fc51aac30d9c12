"""The contract of API.md, run over every backend (and every start method where processes meet)."""

from __future__ import annotations

import pickle
import threading
import time

import pytest

from channels import (
    Channel,
    ChannelBroken,
    ChannelClosed,
    ChannelError,
    ChannelTimeout,
    EndOfChannel,
    Receiver,
    Sender,
    SerializationError,
    WouldBlock,
)

import children
from support import BOUNDED_BACKENDS, LOCAL_BACKENDS, WAIT, drain, join, open_for, start

# -- one process -------------------------------------------------------------------


def test_items_arrive_in_order_then_the_end(backend: str) -> None:
    ch = open_for(backend)
    for i in range(100):
        ch.send(i)
    ch.close()
    assert list(ch) == list(range(100))
    for _ in range(3):
        with pytest.raises(EndOfChannel):
            ch.recv(timeout=1)
    with pytest.raises(EndOfChannel):
        ch.recv_nowait()
    assert list(ch.receiver) == []


def test_the_channel_is_both_halves(backend: str) -> None:
    ch = open_for(backend)
    assert isinstance(ch, Channel)
    assert isinstance(ch, Sender)
    assert isinstance(ch, Receiver)
    assert isinstance(ch.sender, Sender)
    assert isinstance(ch.receiver, Receiver)
    assert ch.sender is ch.sender
    assert ch.receiver is ch.receiver
    ch.close()


def test_closing_is_idempotent_and_send_after_close_fails(backend: str) -> None:
    ch = open_for(backend)
    assert not ch.closed
    assert not ch.sender.closed
    ch.close()
    ch.close()
    ch.sender.close()
    assert ch.closed
    assert ch.sender.closed
    with pytest.raises(ChannelClosed):
        ch.send(1)
    with pytest.raises(ChannelClosed):
        ch.send_nowait(1)
    with pytest.raises(ChannelClosed):
        ch.clone()


def test_the_channel_ends_only_when_every_clone_is_closed(backend: str) -> None:
    ch = open_for(backend)
    a, b = ch.clone(), ch.clone()
    ch.close()
    a.send("a")
    a.close()
    assert ch.recv(timeout=WAIT) == "a"
    with pytest.raises(ChannelTimeout):  # b is still open: not the end yet
        ch.recv(timeout=0.1)
    b.send("b")
    assert not b.closed
    b.close()
    assert b.closed
    assert ch.recv(timeout=WAIT) == "b"
    with pytest.raises(EndOfChannel):
        ch.recv(timeout=WAIT)
    with pytest.raises(ChannelClosed):
        a.send("late")


def test_with_closes_on_exit_and_on_error(backend: str) -> None:
    ch = open_for(backend)
    with ch:
        ch.send(1)
    assert ch.closed
    assert list(ch) == [1]

    other = open_for(backend)

    def fail_inside() -> None:
        with other.sender as sender:
            sender.send(2)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_inside()
    assert other.closed
    assert list(other) == [2]


def test_timeouts_and_nowait(backend: str) -> None:
    ch = open_for(backend)
    started = time.monotonic()
    with pytest.raises(ChannelTimeout) as info:
        ch.recv(timeout=0.2)
    assert isinstance(info.value, TimeoutError)
    assert 0.15 <= time.monotonic() - started < 5
    with pytest.raises(WouldBlock):
        ch.recv_nowait()
    ch.send_nowait(5)
    assert ch.recv_nowait() == 5
    with pytest.raises(ChannelError):
        ch.recv(timeout=-1)
    ch.close()


@pytest.mark.serializes
def test_an_unpicklable_item_fails_at_send_and_the_channel_goes_on(backend: str) -> None:
    ch = open_for(backend)
    lock = threading.Lock()
    with pytest.raises(SerializationError) as info:
        ch.send(lock)
    assert info.value.__cause__ is not None
    with pytest.raises(SerializationError):
        ch.send_nowait(lambda: None)
    ch.send("fine")
    ch.close()
    assert list(ch) == ["fine"]


def test_a_closed_receiver_stops_only_itself(backend: str) -> None:
    ch = open_for(backend)
    ch.send(1)
    ch.receiver.close()
    ch.receiver.close()
    assert ch.receiver.closed
    with pytest.raises(ChannelClosed):
        ch.recv(timeout=1)
    assert not ch.closed
    ch.send(2)
    ch.close()


def test_large_and_many_items(backend: str) -> None:
    ch = open_for(backend)
    big = bytes(range(256)) * (4 << 12)  # 4 MiB
    count = 3000 if backend != "manager" else 300
    for i in range(count):  # far more than an OS pipe holds: send must not wait
        ch.send(b"%d" % i + b"." * 200, timeout=WAIT)
    ch.send(big, timeout=WAIT)
    ch.close()
    got = list(ch)
    assert len(got) == count + 1
    assert got[-1] == big
    assert got[:3] == [b"0" + b"." * 200, b"1" + b"." * 200, b"2" + b"." * 200]


@pytest.mark.serializes
def test_json_serializer_and_size_limit(backend: str) -> None:
    ch = open_for(backend, serializer="json", max_message_size=64)
    ch.send({"a": [1, 2]})
    with pytest.raises(SerializationError):
        ch.send({1, 2})  # not JSON
    with pytest.raises(SerializationError):
        ch.send("x" * 100)  # too large
    ch.close()
    assert list(ch) == [{"a": [1, 2]}]


class RawBytes:
    """A custom serializer that sends bytes as they are, so an item may be empty."""

    def dumps(self, item: object) -> bytes:
        assert isinstance(item, bytes)
        return item

    def loads(self, data: bytes | memoryview) -> object:
        return bytes(data)


RAW = RawBytes()


@pytest.mark.serializes
@pytest.mark.parametrize("sizes", [[0, 1, 0], [0] * 50, [5000, 0, 600, 0]])
def test_empty_items_travel_through_a_raw_serializer(backend: str, sizes: list[int]) -> None:
    ch = open_for(backend, None, serializer=RAW)
    items = [bytes([i % 251]) * size for i, size in enumerate(sizes)]
    for item in items:
        ch.send(item)
    ch.close()
    assert drain(ch) == (items, "EndOfChannel")


@pytest.mark.parametrize("backend", BOUNDED_BACKENDS)
def test_a_bounded_channel_is_full_at_maxsize(backend: str) -> None:
    ch = open_for(backend, maxsize=2)
    ch.send(1)
    ch.send_nowait(2)
    with pytest.raises(WouldBlock):
        ch.send_nowait(3)
    with pytest.raises(ChannelTimeout):
        ch.send(3, timeout=0.2)
    assert ch.recv(timeout=WAIT) == 1
    ch.send(3, timeout=WAIT)
    ch.close()
    assert list(ch) == [2, 3]


@pytest.mark.parametrize("backend", BOUNDED_BACKENDS)
def test_a_full_channel_wakes_a_blocked_sender(backend: str) -> None:
    ch = open_for(backend, maxsize=1)
    ch.send(0)
    done = threading.Event()

    def send_one() -> None:
        ch.send(1, timeout=WAIT)
        done.set()

    thread = threading.Thread(target=send_one)
    thread.start()
    assert not done.wait(0.2)
    assert ch.recv(timeout=WAIT) == 0
    assert done.wait(WAIT)
    thread.join(WAIT)
    ch.close()
    assert list(ch) == [1]


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_local_channels_refuse_pickling_outside_process_start(backend: str) -> None:
    ch = open_for(backend)
    with pytest.raises(ChannelError, match="only as an argument"):
        pickle.dumps(ch)
    with pytest.raises(ChannelError):
        pickle.dumps(ch.sender)
    ch.close()


def test_a_blocked_receiver_wakes_at_the_end(backend: str) -> None:
    ch = open_for(backend)
    outcome: list[object] = []

    def receive() -> None:
        outcome.extend(drain(ch.receiver))

    thread = threading.Thread(target=receive)
    thread.start()
    time.sleep(0.1)
    ch.send("last")
    ch.close()
    thread.join(WAIT)
    assert outcome == [["last"], "EndOfChannel"]


# -- several processes ---------------------------------------------------------------


def test_a_child_producer_and_the_end(backend: str, method: str) -> None:
    ch = open_for(backend, method)
    child = start(method, children.produce, ch.clone(), list(range(50)))
    ch.close()
    items, stop = drain(ch)
    assert join(child) == [0]
    assert items == list(range(50))
    assert stop == "EndOfChannel"


def test_many_producers_many_consumers_exactly_once(backend: str, method: str) -> None:
    ch = open_for(backend, method)
    results = open_for("queue", method)
    count = 400 if backend != "manager" else 60
    producers = [start(method, children.produce_tagged, ch.clone(), tag, count) for tag in range(3)]
    consumers = [start(method, children.consume, ch.receiver, results.clone()) for _ in range(2)]
    ch.close()
    results.close()
    reports, stop = drain(results)
    assert stop == "EndOfChannel"
    assert join(*producers, *consumers) == [0] * 5
    assert sorted(outcome for outcome, _ in reports) == ["end", "end"]  # the end reached both
    seen = [item for _, items in reports for item in items]
    assert sorted(seen) == sorted((tag, i) for tag in range(3) for i in range(count))
    for _, items in reports:  # FIFO per sender, as each consumer saw them
        for tag in range(3):
            mine = [i for t, i in items if t == tag]
            assert mine == sorted(mine)


def test_a_handle_closed_in_a_child_is_closed_everywhere(backend: str, method: str) -> None:
    ch = open_for(backend, method)
    ch.send("before")
    assert join(start(method, children.close_it, ch.sender)) == [0]
    assert ch.closed
    assert ch.sender.closed
    with pytest.raises(ChannelClosed):
        ch.send("after")
    assert drain(ch) == (["before"], "EndOfChannel")


@pytest.mark.processes
@pytest.mark.parametrize("how", ["exit", "kill"])
def test_dead_producers_break_the_channel_after_their_items(
    backend: str, method: str, how: str
) -> None:
    ch = open_for(backend, method)
    child = start(method, children.produce_and_die, ch.clone(), [1, 2, 3], how)
    ch.close()
    started = time.monotonic()
    items, stop = drain(ch)
    assert items == [1, 2, 3]
    assert stop == "ChannelBroken"
    assert time.monotonic() - started < 10
    assert join(child) == ([7] if how == "exit" else [-9])
    with pytest.raises(ChannelBroken):
        ch.recv(timeout=1)


@pytest.mark.processes
def test_a_clean_close_is_told_apart_from_a_crash(backend: str, method: str) -> None:
    ch = open_for(backend, method)
    clean = start(method, children.produce, ch.clone(), ["clean"])
    assert ch.recv(timeout=WAIT) == "clean"
    assert join(clean) == [0]
    # A handle that only waits does not keep the channel alive, so crash only
    # after the clean producer is done: then the crash alone decides the outcome.
    crash = start(method, children.produce_and_die, ch.clone(), ["crash"], "exit")
    ch.close()
    assert drain(ch) == (["crash"], "ChannelBroken")
    assert join(crash) == [7]


@pytest.mark.processes
def test_a_holder_that_never_sent_does_not_keep_a_crashed_channel_alive(
    backend: str, method: str
) -> None:
    ch = open_for(backend, method)
    holder = start(method, children.hold_and_die, ch.clone())
    producer = start(method, children.produce_and_die, ch.clone(), ["x"], "exit")
    join(holder, producer)
    # The parent still holds its own open handle, and never sent on it.
    assert drain(ch) == (["x"], "ChannelBroken")
    ch.close()


@pytest.mark.processes
def test_a_producer_that_exits_right_after_sending_loses_nothing(backend: str, method: str) -> None:
    ch = open_for(backend, method)
    count = 3000 if backend != "manager" else 200
    items = [b"%d" % i * 20 for i in range(count)]
    child = start(method, children.produce_and_die, ch.clone(), items, "kill")
    ch.close()
    # Join before reading: with multiprocessing.Queue this deadlocks or loses items.
    assert join(child) == [-9]
    got, stop = drain(ch)
    assert got == items
    assert stop == "ChannelBroken"


@pytest.mark.processes  # a thread channel has one receiver, which its threads share
def test_closing_a_receiver_in_a_child_leaves_the_others(backend: str, method: str) -> None:
    ch = open_for(backend, method)
    results = open_for("queue", method)
    for i in range(6):
        ch.send(i)
    child = start(method, children.consume_some, ch.receiver, 3, results.clone())
    results.close()
    first, stop = drain(results)
    assert stop == "EndOfChannel"
    assert join(child) == [0]
    assert not ch.receiver.closed
    ch.close()
    rest, stop = drain(ch)
    assert first == [[0, 1, 2]]
    assert rest == [3, 4, 5]
    assert stop == "EndOfChannel"


def test_halves_travel_separately(backend: str, method: str) -> None:
    ch = open_for(backend, method)
    results = open_for("queue", method)
    consumer = start(method, children.consume, ch.receiver, results.clone())
    producer = start(method, children.produce, ch.sender, ["a", "b"])
    results.close()
    reports, _ = drain(results)
    assert reports == [("end", ["a", "b"])]
    assert join(producer, consumer) == [0, 0]
    assert ch.closed
