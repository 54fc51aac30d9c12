"""A Value and an Array in shared memory, updated by several processes under their locks."""

from __future__ import annotations

import multiprocessing

import channels


def work(hits: channels.Value[int], totals: channels.Array[float], slot: int) -> None:
    """Count 1000 hits and add to this worker's slot of the array."""
    for _ in range(1000):
        with hits.lock:  # += reads then writes: without the lock, updates get lost
            hits.value += 1
    totals[slot] = slot * 1.5


if __name__ == "__main__":
    hits = channels.Value[int](0)
    totals = channels.Array[float](4)
    workers = [multiprocessing.Process(target=work, args=(hits, totals, i)) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print("hits:", hits.value)
    print("totals:", list(totals))
    print("sum:", sum(totals))
