"""The event loop never stops: the longest gap of a 10 ms ticker while channels wait.

Each case runs a ticker task (``asyncio.sleep(0.01)`` in a loop) beside one
``asend`` or ``arecv`` with a 1 s timeout that cannot succeed, and records the
longest time between two ticks beyond the 10 ms asked for:

- ``idle``: the ticker alone (the anchor: what the machine itself adds);
- ``full``: ``asend`` on a full bounded channel (``queue``, ``manager``, ``redis``);
- ``lock``: a process stopped (SIGSTOP) while it holds a local channel's write
  lock (``asend``) or read lock (``arecv``), on ``pipe``, ``queue``, ``simplequeue``;
- ``stalled``: a SIGSTOPped manager server, and a SIGSTOPped redis-server
  (``arecv`` then ``asend``).

Goal: the longest gap <= 20 ms in every case. The table gives each gap in ms,
its ratio to the goal, and its ratio to the idle ticker of the same run. Run:
``python benchmarks/bench_loop.py [--repeat 3]`` (redis rows need redis-server).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import shutil
import signal
import statistics
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, cast

import channels
from channels import ChannelTimeout
from channels._engine import steps as _steps

#: The ticker's period, the goal for its longest extra gap, and each wait's timeout.
TICK = 0.01
GOAL = 0.020
WAIT = 1.0


async def _longest_gap(work: Callable[[], Coroutine[Any, Any, object]]) -> float:
    """The longest extra gap of a ticker while ``work()`` runs (its ChannelTimeout expected)."""
    longest = 0.0

    async def tick() -> None:
        nonlocal longest
        last = time.monotonic()
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            longest = max(longest, now - last - TICK)
            last = now

    ticker = asyncio.ensure_future(tick())
    await asyncio.sleep(TICK * 3)
    try:
        await work()
    except ChannelTimeout:
        pass
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
    return longest


def _gap(work: Callable[[], Coroutine[Any, Any, object]]) -> float:
    return asyncio.run(_longest_gap(work))


def idle() -> float:
    return _gap(lambda: asyncio.sleep(WAIT))


def full(spec: str) -> float:
    ch = channels.open_channel[int](spec, maxsize=1)
    ch.send(0)
    try:
        return _gap(lambda: ch.asend(1, timeout=WAIT))
    finally:
        ch.close()


def _hold(point: str, ch: channels.Channel[int]) -> None:
    _steps.pause_at(point)
    if point.startswith("send"):
        ch.send(1)
    else:
        ch.recv_nowait()


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    return stat[stat.rindex(b")") + 2 :].split()[0] == b"T"


def lock(backend: str, point: str) -> float:
    ch = channels.open_channel[int](backend)
    ch.send(0)
    child = multiprocessing.get_context("fork").Process(target=_hold, args=(point, ch))
    child.start()
    while not _stopped(child.pid or 0):
        time.sleep(0.005)
    try:
        if point.startswith("send"):
            return _gap(lambda: ch.asend(2, timeout=WAIT))
        return _gap(lambda: ch.arecv(timeout=WAIT))
    finally:
        os.kill(child.pid or 0, signal.SIGKILL)
        child.join()
        ch.close()


def stalled(ch: channels.Channel[int], pid: int) -> float:
    async def both() -> None:
        for call in (ch.arecv(timeout=WAIT), ch.asend(1, timeout=WAIT)):
            with contextlib.suppress(ChannelTimeout):
                await call

    os.kill(pid, signal.SIGSTOP)
    try:
        return _gap(both)
    finally:
        os.kill(pid, signal.SIGCONT)


def stalled_manager() -> float:
    ch = channels.open_channel[int]("manager")
    core: Any = cast(Any, ch)._sender._core
    try:
        return stalled(ch, core.manager.process.pid)
    finally:
        ch.close()


def stalled_redis(server: Any) -> float:
    ch = channels.open_channel[int](f"redis://127.0.0.1:{server.port}/loop-{time.monotonic_ns()}")
    try:
        return stalled(ch, server.pid)
    finally:
        ch.close()


def _fresh(spec: str, server: Any) -> str:
    """A spec that opens a new channel: on redis, a new name (an ended one stays ended)."""
    if spec != "redis":
        return spec
    return f"redis://127.0.0.1:{server.port}/full-{time.monotonic_ns()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    server: Any = None
    if shutil.which("redis-server"):
        from bench_redis import PrivateRedis  # noqa: PLC0415 (needs redis-py)

        server = PrivateRedis()
    cases: dict[str, Callable[[], float]] = {"idle": idle}
    for spec in ("queue", "manager", *(["redis"] if server else [])):
        cases[f"full {spec}"] = lambda spec=spec: full(_fresh(spec, server))  # type: ignore[misc]
    for backend in ("pipe", "queue", "simplequeue"):
        for point in ("send:locked", "recv:locked"):
            cases[f"lock {backend} {point.split(':')[0]}"] = (
                lambda b=backend, p=point: lock(b, p)  # type: ignore[misc]
            )
    cases["stalled manager"] = stalled_manager
    if server:
        cases["stalled redis"] = lambda: stalled_redis(server)
    gaps: dict[str, list[float]] = {key: [] for key in cases}
    try:
        for _ in range(args.repeat):
            for key, case in cases.items():
                gaps[key].append(case())
    finally:
        if server:
            server.stop()
    anchor = statistics.median(gaps["idle"])
    print(f"longest extra gap of a {TICK * 1000:.0f} ms ticker, median of {args.repeat} rounds")
    print(f"{'case':26} {'gap ms':>8} {'/ goal':>8} {'/ idle':>8}")
    for key, values in gaps.items():
        gap = statistics.median(values)
        print(f"{key:26} {gap * 1000:8.1f} {gap / GOAL:8.2f} {gap / max(anchor, 1e-6):8.1f}")
    worst = max(statistics.median(v) for v in gaps.values())
    print(f"worst: {worst * 1000:.1f} ms = {worst / GOAL:.2f}x the goal of {GOAL * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
