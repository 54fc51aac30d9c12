"""Random SIGKILLs over many producers and consumers on each local backend, counted.

For each backend, ``--rounds`` runs of four producers and four consumers, with
one process killed (and replaced) every 20-100 ms for ``--seconds``. Each
consumer forwards what it takes to a results channel at once, so an item is
lost only if it was taken by a consumer that was killed before forwarding it.
Prints, per backend: runs, kills, hangs (a process still running 20 s after the
run), items delivered, items lost below the newest item of their producer, the
bound on losses (killed consumers), duplicates, and order violations.

    python benchmarks/chaos.py [--rounds 5] [--seconds 2.5] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import signal
import time
from collections import defaultdict
from multiprocessing.process import BaseProcess
from typing import Any

import channels

_CTX = multiprocessing.get_context("fork")
_WAIT = 20.0


def _produce(sender: channels.Sender[Any], tag: int, stop: float) -> None:
    seq = 0
    with sender:
        while time.monotonic() < stop:
            sender.send((tag, seq), timeout=_WAIT)
            seq += 1


def _forward(receiver: channels.Receiver[Any], results: channels.Sender[Any], me: int) -> None:
    with results:
        while True:
            try:
                item = receiver.recv(timeout=_WAIT)
            except (channels.EndOfChannel, channels.ChannelBroken):
                return
            results.send((me, item), timeout=_WAIT)


def one_run(backend: str, seed: int, seconds: float) -> dict[str, int]:
    """One run; its counts."""
    rng = random.Random(seed)
    options: dict[str, Any] = {"maxsize": 16} if backend == "queue" else {}
    ch = channels.open_channel[Any](backend, **options)
    results = channels.open_channel[Any]("queue")
    stop = time.monotonic() + seconds
    producers: dict[int, BaseProcess] = {}
    consumers: dict[int, BaseProcess] = {}

    def new_producer() -> None:
        tag = len(producers)
        producers[tag] = _CTX.Process(target=_produce, args=(ch.clone(), tag, stop))
        producers[tag].start()

    def new_consumer() -> None:
        me = len(consumers)
        consumers[me] = _CTX.Process(target=_forward, args=(ch.receiver, results.clone(), me))
        consumers[me].start()

    for _ in range(4):
        new_producer()
        new_consumer()
    kills = {"producers": 0, "consumers": 0}
    while time.monotonic() < stop - 0.2:
        time.sleep(rng.uniform(0.02, 0.1))
        side, table, make = (
            ("producers", producers, new_producer)
            if rng.random() < 0.5
            else ("consumers", consumers, new_consumer)
        )
        alive = [k for k, p in table.items() if p.is_alive()]
        if alive:
            os.kill(table[rng.choice(alive)].pid or 0, signal.SIGKILL)
            kills[side] += 1
            make()
    ch.close()
    results.close()
    hangs = 0
    for process in [*producers.values(), *consumers.values()]:
        process.join(_WAIT)
        if process.exitcode is None:
            hangs += 1
            process.kill()
            process.join()
    return {
        "runs": 1,
        "kills": kills["producers"] + kills["consumers"],
        "hangs": hangs,
        "loss_bound": kills["consumers"],
        **_count(results, len(producers)),
    }


def _count(results: channels.Receiver[Any], producers: int) -> dict[str, int]:
    """What arrived: delivered, lost below each producer's newest, duplicates, disorder."""
    got: list[Any] = []
    while True:
        try:
            got += results.recv_many(10_000, timeout=_WAIT)
        except channels.ChannelError:
            break
    seen: dict[tuple[int, int], int] = defaultdict(int)
    last: dict[tuple[int, int], int] = {}
    disorder = 0
    for me, (tag, seq) in got:
        seen[tag, seq] += 1
        if last.get((me, tag), -1) >= seq:
            disorder += 1
        last[me, tag] = seq
    lost = 0
    for tag in range(producers):
        seqs = [seq for (t, seq) in seen if t == tag]
        lost += max(seqs, default=-1) + 1 - len(seqs)
    return {
        "delivered": len(seen),
        "lost": lost,
        "duplicates": sum(n - 1 for n in seen.values()),
        "disorder": disorder,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Random SIGKILLs on each local backend.")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.5)
    parser.add_argument("--backend", action="append", choices=["pipe", "queue", "simplequeue"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report: dict[str, dict[str, int]] = {}
    for backend in args.backend or ["pipe", "queue", "simplequeue"]:
        total: dict[str, int] = defaultdict(int)
        for seed in range(args.rounds):
            for key, value in one_run(backend, seed, args.seconds).items():
                total[key] += value
        report[backend] = dict(total)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    keys = ["runs", "kills", "hangs", "delivered", "lost", "loss_bound", "duplicates", "disorder"]
    print(f"{'backend':12}" + "".join(f"{k:>12}" for k in keys))
    for backend, counts in report.items():
        print(f"{backend:12}" + "".join(f"{counts[k]:>12,}" for k in keys))


if __name__ == "__main__":
    main()
