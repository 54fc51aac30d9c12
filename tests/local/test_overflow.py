"""The overflow ring: wraps, jumps to larger rings and rewinds, against a model."""

from __future__ import annotations

import os
import pickle
import tempfile
from array import array
from collections import deque
from collections.abc import Iterator
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels._backends.local import overflow as _spill
from channels._backends.local.core import LocalCore
from channels._backends.local.overflow import Overflow
from channels._codec.payloads import Part
from channels._codec.serializers import PICKLE

import children
from support import WAIT, join, open_for, start


@pytest.fixture
def tiny_ring(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ring and allocation chunk so small that every path runs all the time."""
    monkeypatch.setattr(_spill, "_FIRST_RING", 256)
    monkeypatch.setattr(_spill, "_CHUNK", 96)
    monkeypatch.setattr(_spill, "_SHRINK_ABOVE", 4096)


def _overflow() -> Iterator[tuple[Overflow, int]]:
    fd, path = tempfile.mkstemp()
    os.unlink(path)
    try:
        words = memoryview(array("q", bytes(8 * (_spill.WORDS + 2))))
        overflow = Overflow(words[2:], words, (0, 1), fd, 0)
        overflow.initialise()
        yield overflow, fd
    finally:
        os.close(fd)


operations = st.lists(
    st.one_of(
        st.integers(0, 700).map(lambda n: ("append", n)),
        st.integers(1, 6).map(lambda n: ("append_many", n)),
        st.integers(1, 40).map(lambda n: ("append_batch", n)),
        st.just(("take", 0)),
        st.integers(1, 6).map(lambda n: ("take_many", n)),
    ),
    max_size=120,
)


def _items(got: bytes | Part) -> list[bytes]:
    """What a payload the overflow gave holds: one item, or a run of a stored batch."""
    if isinstance(got, Part):
        return [bytes(cast(bytes, b)) for b in got.frame.load(PICKLE)[got.start : got.stop]]
    return [bytes(got)]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_the_ring_against_a_deque(tiny_ring: None, ops: list[tuple[str, int]]) -> None:
    for overflow, _ in _overflow():
        model: deque[bytes] = deque()
        for serial, (op, size) in enumerate(ops):
            if op == "append":
                item = bytes([serial % 251]) * size
                was_empty = not overflow.pending()
                assert overflow.append(item) is was_empty
                model.append(item)
            elif op == "append_many":  # a run goes in while it fits the ring's current run
                batch = [bytes([(serial + k) % 251]) * (k * 37 % 90) for k in range(size)]
                went = overflow.append_many(batch, 0, len(batch))
                assert 0 <= went <= len(batch)
                model.extend(batch[:went])
            elif op == "append_batch":  # a stored batch, taken whole or in parts
                batch = [bytes([(serial + k) % 251]) * (k % 7) for k in range(size)]
                was_empty = not overflow.pending()
                assert overflow.append_batch(pickle.dumps(batch), size) is was_empty
                model.extend(batch)
            elif op == "take_many":  # a run comes out while it lies in the ring's current run
                items, count, upto, split = overflow.peek_many(size)
                flat = [one for got in items for one in _items(got)]
                assert len(flat) == count <= size
                overflow.take_to(upto, split)
                for item in flat:
                    assert item == model.popleft()
            else:
                got = overflow.take()
                if model:
                    assert got is not None
                    assert _items(got) == [model.popleft()]
                else:
                    assert got is None
                    assert not overflow.pending()
                    if overflow.needs_rewind():
                        overflow.rewind()
        while model:
            got = overflow.take()
            assert got is not None
            assert _items(got) == [model.popleft()]
        assert overflow.take() is None
        assert not overflow.pending()


def test_a_steady_backlog_reuses_the_ring(tiny_ring: None) -> None:
    for overflow, fd in _overflow():
        backlog = deque(bytes([i]) * 50 for i in range(3))
        for item in backlog:
            overflow.append(item)
        for i in range(5000):  # one in, one out: the backlog never drains
            item = bytes([i % 256]) * 50
            overflow.append(item)
            backlog.append(item)
            got = overflow.take()
            assert got is not None
            assert _items(got) == [backlog.popleft()]
        assert os.fstat(fd).st_size < 4096  # 5000 items of 58 bytes went through 256 bytes


@pytest.mark.slow
def test_a_full_bounded_channel_keeps_its_file_small() -> None:
    ch = open_for("queue", "fork", maxsize=8)
    core = ch.sender._core  # type: ignore[attr-defined]
    assert isinstance(core, LocalCore)
    count, item = 600, b"x" * (64 << 10)
    producer = start("fork", children.produce, ch.clone(), [item] * count)
    ch.close()
    biggest = 0
    for _ in range(count):  # the channel stays full: the overflow never drains
        assert ch.recv(timeout=WAIT) == item
        biggest = max(biggest, os.fstat(core._fds.state).st_size)
    assert join(producer) == [0]
    assert biggest < 8 << 20  # ~37 MiB went through; the file held about one backlog
