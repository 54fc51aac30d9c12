"""Targets for the shared-state tests' child processes; importable under spawn and forkserver."""

from __future__ import annotations

import time
from collections.abc import MutableMapping, MutableSequence

import channels


def hold_lock(lock: channels.Lock, ready: channels.Sender[int]) -> None:
    """Take ``lock``, say so, and keep it until killed."""
    lock.acquire()
    ready.send(1, timeout=20)
    time.sleep(60)


def count_up(counter: channels.Value[int], tallies: channels.Array[int], slot: int, n: int) -> None:
    """Add 1 to ``counter`` and ``tallies[0]`` ``n`` times under their locks; note ``n``."""
    for _ in range(n):
        with counter.lock:
            counter.value += 1
        with tallies.lock:
            tallies[0] += 1
    tallies[slot] = n


def fill(
    value: channels.Value[float], flags: channels.Array[bool], ratios: channels.Array[float]
) -> None:
    """Write known values into shared memory the parent made."""
    value.value = 2.5
    flags[:] = [True, False, True]
    for i in range(len(ratios)):
        ratios[i] = i / 4


def record(scores: MutableMapping[str, int], names: MutableSequence[str], tag: str, n: int) -> None:
    """Add ``n`` entries under ``tag`` to a managed dict and list."""
    for i in range(n):
        scores[f"{tag}{i}"] = i
        names.append(f"{tag}{i}")


def record_from(
    inbox: channels.Receiver[tuple[MutableMapping[str, int], MutableSequence[str]]],
) -> None:
    """Receive managed proxies on a channel (while running) and use them."""
    scores, names = inbox.recv(timeout=20)
    scores["late"] = 1
    names.append("late")
