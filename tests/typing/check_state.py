"""What type checkers see of the shared state: ``Value``, ``Array``, ``Lock``, managed dict/list.

mypy and pyright check this file (strict); pytest never runs it. The misuses
that must be rejected are in ``tests/test_typing.py``.
"""

from __future__ import annotations

from collections.abc import MutableMapping, MutableSequence
from typing import Any, assert_type

from channels import Array, ChannelManager, Lock, ManagedDict, ManagedList, Value


def values() -> None:
    hits = Value[int](0)
    assert_type(hits, Value[int])
    assert_type(hits.value, int)
    with hits.lock:
        hits.value += 1
    assert_type(hits.lock, Lock)
    assert_type(Value[float](0).value, float)
    assert_type(Value[bool](False).value, bool)
    assert_type(Value(0.5), Value[float])
    assert_type(Value(True).value, bool)


def arrays() -> None:
    ratios = Array[float](10)
    assert_type(ratios, Array[float])
    seq: MutableSequence[float] = ratios
    assert_type(ratios[0], float)
    assert_type(ratios[1:3], list[float])
    ratios[2:4] = [0.5, 1.5]
    assert_type(Array[int]([1, 2, 3]), Array[int])
    assert_type(Array([True, False])[0], bool)
    assert_type(ratios.lock, Lock)
    del seq


def locks() -> None:
    lock = Lock()
    assert_type(lock.acquire(), bool)
    assert_type(lock.acquire(timeout=1.0), bool)
    assert_type(lock.acquire(block=False), bool)
    assert_type(lock.locked(), bool)
    with lock as taken:
        assert_type(taken, bool)
    lock.release()


def managed(manager: ChannelManager) -> None:
    scores = manager.dict[str, int]()
    assert_type(scores, ManagedDict[str, int])
    mapping: MutableMapping[str, int] = scores
    assert_type(scores["a"], int)
    assert_type(scores.get("a"), int | None)
    assert_type(scores.get("a", 0), int)
    assert_type(scores.copy(), dict[str, int])
    names = manager.list[str](["a"])
    assert_type(names, ManagedList[str])
    sequence: MutableSequence[str] = names
    assert_type(names[0], str)
    assert_type(names[:2], list[str])
    assert_type(names.pop(), str)
    assert_type(manager.dict(), ManagedDict[Any, Any])
    assert_type(manager.list(), ManagedList[Any])
    assert_type(manager.dict[str, list[int]](), ManagedDict[str, list[int]])
    del mapping, sequence
