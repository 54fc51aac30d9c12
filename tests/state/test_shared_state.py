"""Shared state: Lock, Value, Array, and a manager's dict and list, across processes."""

from __future__ import annotations

import logging
import os
import pickle
import signal
import threading
import time
from collections.abc import MutableMapping, MutableSequence
from typing import Any

import pytest

import channels

from state_funcs import count_up, fill, hold_lock, record, record_from
from support import WAIT, join, start

# -- Lock ---------------------------------------------------------------------------------


def test_lock_of_a_killed_holder_is_taken_over_and_logged(
    method: str, caplog: pytest.LogCaptureFixture
) -> None:
    lock = channels.Lock()
    with channels.open_channel[int]("pipe") as ready:
        holder = start(method, hold_lock, lock, ready.sender)
        assert ready.recv(timeout=WAIT) == 1
        assert lock.locked()
        assert not lock.acquire(timeout=0.1)  # a live holder's lock is never taken
        caplog.set_level(logging.WARNING, logger="channels")
        os.kill(holder.pid or 0, signal.SIGKILL)
        began = time.monotonic()
        assert lock.acquire(timeout=WAIT)
        assert time.monotonic() - began < 2.0
        lock.release()
    join(holder)
    assert holder.exitcode == -signal.SIGKILL
    assert "died holding a channels.Lock" in caplog.text
    assert not lock.locked()


def test_lock_of_a_thread_that_ended_holding_it_is_taken_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lock = channels.Lock()
    thread = threading.Thread(target=lock.acquire)
    thread.start()
    thread.join(WAIT)
    caplog.set_level(logging.WARNING, logger="channels")
    with lock:
        assert lock.locked()
    assert "died holding a channels.Lock" in caplog.text


def test_lock_calls() -> None:
    lock = channels.Lock()
    assert not lock.locked()
    assert lock.acquire(block=False)
    assert lock.locked()
    with pytest.raises(channels.ChannelError, match="not reentrant"):
        lock.acquire(timeout=0.1)
    other: list[bool] = []
    thread = threading.Thread(target=lambda: other.append(lock.acquire(block=False)))
    thread.start()
    thread.join(WAIT)
    assert other == [False]
    lock.release()
    with pytest.raises(channels.ChannelError, match="does not hold"):
        lock.release()
    with pytest.raises(channels.ConfigError):
        lock.acquire(block=False, timeout=1)
    with pytest.raises(channels.ConfigError):
        lock.acquire(timeout=-2)
    assert lock.acquire(timeout=-1)  # the stdlib's "no timeout"
    lock.release()


def test_shared_memory_pickles_only_to_a_starting_child() -> None:
    for shared in (channels.Lock(), channels.Value[int](1), channels.Array[int](2)):
        with pytest.raises(channels.ChannelError, match="only as an argument when it starts"):
            pickle.dumps(shared)


# -- Value and Array ---------------------------------------------------------------------


def test_counters_of_four_processes_under_the_lock_are_exact(method: str) -> None:
    counter = channels.Value[int](0)
    tallies = channels.Array[int](5)
    n = 300
    workers = [start(method, count_up, counter, tallies, slot, n) for slot in range(1, 5)]
    assert join(*workers) == [0, 0, 0, 0]
    assert counter.value == 4 * n
    assert list(tallies) == [4 * n, n, n, n, n]


def test_value_and_array_written_by_a_child(method: str) -> None:
    value = channels.Value(0.0)
    flags = channels.Array[bool](3)
    ratios = channels.Array[float](4)
    assert join(start(method, fill, value, flags, ratios)) == [0]
    assert value.value == 2.5
    assert flags[:] == [True, False, True]
    assert list(ratios) == [0.0, 0.25, 0.5, 0.75]


def test_value_types() -> None:
    assert repr(channels.Value[int](3)) == "Value[int](3)"
    assert channels.Value[float](1).value == 1.0
    assert isinstance(channels.Value[float](1).value, float)
    assert channels.Value(True).value is True
    flag = channels.Value[bool](False)
    flag.value = True
    assert flag.value is True
    big = channels.Value[int](0)
    with pytest.raises(channels.ChannelError, match="64-bit"):
        big.value = 1 << 63
    with pytest.raises(channels.ChannelError, match="not str"):
        big.value = "x"  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    assert isinstance(big.lock, channels.Lock)
    assert big.get_lock() is big.lock


@pytest.mark.parametrize("bad", [str, bytes, complex, list, object])
def test_other_item_types_are_refused(bad: type) -> None:
    shared: Any = channels
    with pytest.raises(channels.ConfigError, match="int, float or bool"):
        shared.Value[bad]
    with pytest.raises(channels.ConfigError, match="int, float or bool"):
        shared.Array[bad]
    with pytest.raises(channels.ConfigError, match="int, float or bool"):
        shared.Value(bad())


def test_array_is_a_fixed_length_mutable_sequence() -> None:
    coords = channels.Array[int]([1, 2, 3])
    assert isinstance(coords, MutableSequence)
    assert len(coords) == 3
    assert coords[-1] == 3
    assert coords[::2] == [1, 3]
    coords[1:] = [5, 6]
    coords[0] += 10
    assert list(coords) == [11, 5, 6]
    assert coords.index(6) == 2
    assert 5 in coords
    coords.reverse()
    assert repr(coords) == "Array[int]([6, 5, 11])"
    with pytest.raises(IndexError):
        coords[3]
    with pytest.raises(channels.ChannelError, match="fixed length"):
        coords.append(1)
    with pytest.raises(channels.ChannelError, match="fixed length"):
        del coords[0]
    with pytest.raises(channels.ChannelError, match="fixed length"):
        coords[0:2] = [1]
    with pytest.raises(channels.ConfigError, match="item type"):
        channels.Array(3)
    assert list(channels.Array[float](0)) == []
    assert channels.Array([0.5, 1.5])[1] == 1.5


# -- a manager's dict and list -------------------------------------------------------------


def test_managed_dict_and_list_across_processes(method: str) -> None:
    with channels.ChannelManager(ctx=method) as manager:
        scores = manager.dict[str, int]({"seed": 0})
        names = manager.list[str]()
        workers = [start(method, record, scores, names, tag, 20) for tag in "ab"]
        assert join(*workers) == [0, 0]
        assert len(scores) == 41
        assert scores["b19"] == 19
        assert sorted(names) == sorted(f"{t}{i}" for t in "ab" for i in range(20))
        # Handed to a process that is already running, through a channel.
        with channels.open_channel[tuple[MutableMapping[str, int], MutableSequence[str]]](
            "queue"
        ) as inbox:
            late = start(method, record_from, inbox.receiver)
            inbox.send((scores, names), timeout=WAIT)
            assert join(late) == [0]
        assert scores.pop("late") == 1
        assert names[-1] == "late"


def test_managed_dict_calls() -> None:
    with channels.ChannelManager() as manager:
        d = manager.dict[str, int]([("a", 1)])
        d.update({"b": 2}, c=3)
        assert d.copy() == {"a": 1, "b": 2, "c": 3}
        assert d.get("z") is None
        assert d.get("z", 7) == 7
        assert d.setdefault("a", 5) == 1
        assert d.pop("z", None) is None
        with pytest.raises(KeyError):
            d["z"]
        del d["a"]
        assert sorted(d) == ["b", "c"]
        assert d.popitem() == ("c", 3)
        with pytest.raises(channels.SerializationError):
            d["f"] = lambda: 1  # type: ignore[assignment]  # pyright: ignore[reportArgumentType]
        assert dict(d) == {"b": 2}
        d.clear()
        assert not d
        copy = pickle.loads(pickle.dumps(d))  # any time, never with the authkey
        copy["x"] = 1
        assert d["x"] == 1
        assert b"authkey" not in pickle.dumps(d)


def test_managed_list_calls() -> None:
    with channels.ChannelManager() as manager:
        items = manager.list[int]([3, 1, 2])
        items.append(4)
        items.extend(range(5, 7))
        items.insert(0, 0)
        assert items[:] == [0, 3, 1, 2, 4, 5, 6]
        items[1:3] = [9]
        del items[-1]
        assert items.pop() == 5
        items.remove(9)
        assert items.copy() == [0, 2, 4]
        assert (items.index(4), items.count(2), 2 in items) == (2, 1, True)
        items.reverse()
        assert list(items) == [4, 2, 0]
        with pytest.raises(IndexError):
            items[5]
        with pytest.raises(ValueError, match="not in list"):
            items.remove(7)


def test_managed_objects_need_a_running_manager() -> None:
    manager = channels.ChannelManager()
    with pytest.raises(channels.ConfigError, match="not running"):
        manager.dict[str, int]()


def test_managed_objects_break_loudly_once_their_server_is_gone() -> None:
    with channels.ChannelManager() as manager:
        scores = manager.dict[str, int]({"a": 1})
        names = manager.list[str](["a"])
    with pytest.raises(channels.ChannelBroken):
        scores["a"]
    with pytest.raises(channels.ChannelBroken):
        names.append("b")
