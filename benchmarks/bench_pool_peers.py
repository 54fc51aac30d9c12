"""``channels.Pool`` beside every process pool users reach for, in one run.

The peers: ``multiprocessing.Pool``, ``concurrent.futures.ProcessPoolExecutor``,
loky, mpire and pebble (the last three from the ``bench`` extra; a peer not
installed is left out and says so). Three measurements, each with the same
number of workers:

- **trivial tasks** (``x + 1``, ``--trivial-tasks``): the cost is all in moving
  tasks and results. Each peer runs at several chunksizes and its best is its
  *tuned* figure; ``channels.Pool.map`` runs with its defaults.
- **~2 ms tasks** (``--heavy-tasks``): the cost is all in the workers. Every
  pool runs with its defaults (chunksize included) and, for the peers, tuned too.
- **time to first result**: a fresh interpreter imports the pool, starts it
  with 2 workers and waits for one ``abs(-1)``; the interpreter's own start is
  left out (each child times itself).

Warm pools are reused across rounds; the contenders take turns in each round
and each time is the best of ``--repeat`` rounds. The ratio is
``channels.Pool``'s rate over the best peer's (above 1 is faster), or, for the
first result, its time over the fastest peer's (below 1 is faster). Goals: at
least 2.0x the best peer's tuned run on trivial tasks, at least 1.0x on 2 ms
tasks with defaults.

loky always starts workers its own way (fork then exec), whatever
``--context`` says. Run:
``python benchmarks/bench_pool_peers.py [--workers N] [--context fork] [--repeat R] [--json]``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import multiprocessing
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from typing import Protocol, cast

import channels


def trivial(x: int) -> int:
    return x + 1


def heavy(x: int) -> int:
    """About 2 ms of pure Python on one core of a typical machine."""
    total = 0
    for i in range(40_000):
        total += (i * x) % 7
    return total


class _MpireWorkerPool(Protocol):
    def map(
        self, func: Callable[[int], int], iterable_of_args: range, chunk_size: int | None = ...
    ) -> list[int]: ...

    def terminate(self) -> None: ...


class _MapFuture(Protocol):
    def result(self) -> Iterator[int]: ...


class _PebblePool(Protocol):
    def map(
        self, function: Callable[[int], int], iterable: range, chunksize: int = ...
    ) -> _MapFuture: ...

    def close(self) -> None: ...

    def join(self) -> None: ...


def _optional(name: str) -> object | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# A run: (function, inputs, chunksize or None for the pool's default) -> every result read.
Run = Callable[[Callable[[int], int], range, "int | None"], None]


def _drain(results: Iterable[int]) -> None:
    for _ in results:
        pass


def _executor_run(executor: Executor) -> Run:
    def run(fn: Callable[[int], int], inputs: range, chunksize: int | None) -> None:
        _drain(executor.map(fn, inputs, chunksize=chunksize or 1))

    return run


def open_peers(stack: ExitStack, workers: int, method: str) -> dict[str, Run]:
    """Start every installed peer, warm; ``stack`` closes them."""
    ctx = multiprocessing.get_context(method)
    peers: dict[str, Run] = {}
    stdlib = stack.enter_context(ctx.Pool(workers))

    def stdlib_run(fn: Callable[[int], int], inputs: range, chunksize: int | None) -> None:
        if chunksize is None:
            stdlib.map(fn, inputs)
        else:
            _drain(stdlib.imap(fn, inputs, chunksize=chunksize))

    peers["multiprocessing.Pool"] = stdlib_run
    peers["ProcessPoolExecutor"] = _executor_run(
        stack.enter_context(ProcessPoolExecutor(workers, mp_context=ctx))
    )
    loky = _optional("loky")
    if loky is not None:
        make = cast("Callable[..., Executor]", getattr(loky, "get_reusable_executor"))  # noqa: B009
        executor = make(max_workers=workers)
        stack.callback(executor.shutdown)
        peers["loky"] = _executor_run(executor)
    mpire = _optional("mpire")
    if mpire is not None:
        make_pool = cast("Callable[..., _MpireWorkerPool]", getattr(mpire, "WorkerPool"))  # noqa: B009
        mpool = make_pool(n_jobs=workers, start_method=method, keep_alive=True)
        stack.callback(mpool.terminate)

        def mpire_run(fn: Callable[[int], int], inputs: range, chunksize: int | None) -> None:
            mpool.map(fn, inputs, chunk_size=chunksize)

        peers["mpire"] = mpire_run
    pebble = _optional("pebble")
    if pebble is not None:
        make_pebble = cast("Callable[..., _PebblePool]", getattr(pebble, "ProcessPool"))  # noqa: B009
        ppool = make_pebble(max_workers=workers, context=ctx)

        def close_pebble() -> None:
            ppool.close()
            ppool.join()

        stack.callback(close_pebble)

        def pebble_run(fn: Callable[[int], int], inputs: range, chunksize: int | None) -> None:
            _drain(ppool.map(fn, inputs, chunksize=chunksize or 1).result())

        peers["pebble"] = pebble_run
    return peers


@dataclass(frozen=True)
class Workload:
    name: str
    fn: Callable[[int], int]
    tasks: int
    chunksizes: tuple[int, ...]
    defaults: bool  # also run every peer with its default chunksize


def throughput(
    workload: Workload, pool: channels.Pool, peers: dict[str, Run], repeat: int
) -> dict[str, float]:
    """Tasks per second of each row, best of ``repeat`` interleaved rounds."""
    inputs = range(workload.tasks)
    rows: dict[str, Callable[[], object]] = {
        "channels.Pool.map (defaults)": lambda: pool.map(workload.fn, inputs)
    }
    for name, run in peers.items():
        if workload.defaults:
            rows[f"{name} (defaults)"] = partial(run, workload.fn, inputs, None)
        for size in workload.chunksizes:
            rows[f"{name} (chunksize={size})"] = partial(run, workload.fn, inputs, size)
    best = dict.fromkeys(rows, math.inf)
    for turn in range(repeat):
        order = list(rows) if turn % 2 == 0 else list(reversed(rows))
        for label in order:
            start = time.perf_counter()
            rows[label]()
            best[label] = min(best[label], time.perf_counter() - start)
    return {label: workload.tasks / seconds for label, seconds in best.items()}


_FIRST = {
    "channels.Pool": (
        "import channels\n"
        "with channels.Pool(2, context={method!r}) as pool:\n"
        "    pool.apply(abs, args=(-1,))\n"
        "    elapsed = time.perf_counter() - start\n"
    ),
    "multiprocessing.Pool": (
        "import multiprocessing\n"
        "with multiprocessing.get_context({method!r}).Pool(2) as pool:\n"
        "    pool.apply(abs, args=(-1,))\n"
        "    elapsed = time.perf_counter() - start\n"
    ),
    "ProcessPoolExecutor": (
        "import multiprocessing\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context({method!r})) as pool:\n"
        "    pool.submit(abs, -1).result()\n"
        "    elapsed = time.perf_counter() - start\n"
    ),
    "loky": (
        "import loky\n"
        "pool = loky.get_reusable_executor(max_workers=2)\n"
        "pool.submit(abs, -1).result()\n"
        "elapsed = time.perf_counter() - start\n"
        "pool.shutdown()\n"
    ),
    "mpire": (
        "import mpire\n"
        "with mpire.WorkerPool(n_jobs=2, start_method={method!r}) as pool:\n"
        "    pool.apply(abs, (-1,))\n"
        "    elapsed = time.perf_counter() - start\n"
    ),
    "pebble": (
        "import multiprocessing, pebble\n"
        "with pebble.ProcessPool(2, context=multiprocessing.get_context({method!r})) as pool:\n"
        "    pool.schedule(abs, (-1,)).result()\n"
        "    elapsed = time.perf_counter() - start\n"
    ),
}


def _first_result(body: str) -> float:
    code = f"import time\nstart = time.perf_counter()\n{body}print(elapsed)\n"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return float(done.stdout.split()[-1])


def first_results(method: str, repeat: int, installed: set[str]) -> dict[str, float]:
    """Median seconds from import to a fresh 2-worker pool's first result, per pool."""
    names = [name for name in _FIRST if name in installed]
    samples: dict[str, list[float]] = {name: [] for name in names}
    for turn in range(repeat):
        for name in names if turn % 2 == 0 else reversed(names):
            samples[name].append(_first_result(_FIRST[name].format(method=method)))
    return {name: statistics.median(values) for name, values in samples.items()}


def _best_peer(rates: dict[str, float]) -> tuple[str, float]:
    label = max((k for k in rates if not k.startswith("channels")), key=rates.__getitem__)
    return label, rates[label]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--context", default="fork", choices=multiprocessing.get_all_start_methods()
    )
    parser.add_argument("--first-methods", nargs="*", default=["forkserver", "spawn"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--trivial-tasks", type=int, default=200_000)
    parser.add_argument("--heavy-tasks", type=int, default=400)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    workloads = [
        Workload("trivial tasks", trivial, args.trivial_tasks, (1_000, 10_000, 50_000), False),
        Workload("~2 ms tasks", heavy, args.heavy_tasks, (4, 16), True),
    ]
    report: dict[str, dict[str, float]] = {}
    with ExitStack() as stack:
        pool = stack.enter_context(channels.Pool(args.workers, context=args.context))
        peers = open_peers(stack, args.workers, args.context)
        warm = range(args.workers * 4)
        pool.map(trivial, warm)
        for run in peers.values():
            run(trivial, warm, 1)
        for workload in workloads:
            report[workload.name] = throughput(workload, pool, peers, args.repeat)
    installed = {"channels.Pool", *peers}
    for method in args.first_methods:
        report[f"first result, {method}"] = first_results(method, max(args.repeat, 5), installed)

    if args.json:
        print(json.dumps(report, indent=2))
        return
    missing = sorted({"loky", "mpire", "pebble"} - set(peers))
    print(
        f"{args.workers} workers, start method {args.context} (loky: its own), "
        f"best of {args.repeat} rounds"
        + (f"; not installed: {', '.join(missing)}" if missing else "")
        + "\n"
    )
    for workload in workloads:
        rates = report[workload.name]
        _, reference = _best_peer(rates)
        print(f"{workload.name}: {workload.tasks} tasks")
        print(f"  {'pool (chunksize)':<44} {'tasks/s':>10} {'vs best peer':>13}")
        for label, rate in sorted(rates.items(), key=lambda item: -item[1]):
            print(f"  {label:<44} {rate:>10.0f} {rate / reference:>12.2f}x")
        print()
    for method in args.first_methods:
        times = report[f"first result, {method}"]
        print(f"time to first result, fresh 2-worker pool, {method} (median)")
        fastest = min(v for k, v in times.items() if k != "channels.Pool")
        for label, seconds in sorted(times.items(), key=lambda item: item[1]):
            print(f"  {label:<44} {seconds * 1e3:>8.1f} ms {seconds / fastest:>8.2f}x")
        print()
    for workload, goal in zip(workloads, (2.0, 1.0), strict=True):
        rates = report[workload.name]
        peer, reference = _best_peer(rates)
        ratio = rates["channels.Pool.map (defaults)"] / reference
        print(
            f"{workload.name}: channels.Pool.map {ratio:.2f}x the best peer, {peer} "
            f"(goal >= {goal}x)"
        )
        defaults = {k: v for k, v in rates.items() if k.endswith("(defaults)")}
        if workload.defaults:
            peer, reference = _best_peer(defaults)
            ratio = defaults["channels.Pool.map (defaults)"] / reference
            print(
                f"{workload.name}: channels.Pool.map {ratio:.2f}x the best peer at defaults, {peer}"
            )


if __name__ == "__main__":
    main()
