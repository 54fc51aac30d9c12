"""Compare ``channels.Pool`` with ``multiprocessing.Pool`` and ``ProcessPoolExecutor``.

Two workloads: many trivial calls, where the cost is all in moving tasks and
results between processes, and fewer heavy calls, where it is all in the
workers. Every pool has the same number of workers and start method and is
warmed up before it is timed. ``multiprocessing.Pool.imap`` and the executor
run at each of several chunksizes, and the best of them is their hand-tuned
figure; ``channels.Pool`` runs with its defaults, crash detection included.

The contenders take turns, one run each per round, so that a machine whose
load changes during the benchmark slows them all alike; each time is the best
of ``--repeat`` rounds. The ratio is the row's rate (tasks per second) over
the tuned ``multiprocessing.Pool.imap``'s (the best of its rows): above 1 is
faster than it.
``ProcessPoolExecutor.map`` with its defaults sends one task per message; it
runs at most 5,000 tasks, and its rate is set beside ``channels.Pool``'s.

Run: ``python benchmarks/bench_pool.py [--workers N] [--context fork]``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.pool import Pool as StdlibPool

from channels import Pool


def trivial(x: int) -> int:
    return x + 1


def heavy(x: int) -> int:
    total = 0
    for i in range(40_000):
        total += (i * x) % 7
    return total


@dataclass(frozen=True)
class Workload:
    name: str
    fn: Callable[[int], int]
    tasks: int
    chunksizes: tuple[int, ...]


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def consume(results: Iterable[int]) -> None:
    for _ in results:
        pass


_MP = "multiprocessing.Pool.imap (chunksize="
_CF = "ProcessPoolExecutor.map (chunksize="


def contenders(
    workload: Workload, stdlib: StdlibPool, executor: ProcessPoolExecutor, pool: Pool
) -> dict[str, Callable[[], object]]:
    """The runs to time: the stdlib ones at every candidate chunksize, the best wins."""
    fn, inputs = workload.fn, range(workload.tasks)

    def stdlib_imap(size: int) -> Callable[[], object]:
        return lambda: consume(stdlib.imap(fn, inputs, chunksize=size))

    def executor_map(size: int) -> Callable[[], object]:
        return lambda: consume(executor.map(fn, inputs, chunksize=size))

    runs: dict[str, Callable[[], object]] = {}
    for size in workload.chunksizes:
        runs[f"{_MP}{size})"] = stdlib_imap(size)
    if workload.tasks <= 10_000:
        runs["multiprocessing.Pool.imap (its default, chunksize=1)"] = stdlib_imap(1)
    for size in workload.chunksizes:
        runs[f"{_CF}{size})"] = executor_map(size)
    # The executor's default (one task per message) on at most a few thousand tasks: rates compare.
    few = range(min(workload.tasks, 5_000))
    runs[f"ProcessPoolExecutor.map (its defaults, {len(few)} tasks)"] = lambda: consume(
        executor.map(fn, few)
    )
    runs["channels.Pool.imap (default chunksize)"] = lambda: consume(pool.imap(fn, inputs))
    runs["channels.Pool.imap_unordered (default)"] = lambda: consume(
        pool.imap_unordered(fn, inputs)
    )
    runs["channels.Pool.map (default chunksize)"] = lambda: pool.map(fn, inputs)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--context", default="fork", choices=multiprocessing.get_all_start_methods()
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--trivial-tasks", type=int, default=1_000_000)
    parser.add_argument("--heavy-tasks", type=int, default=400)
    args = parser.parse_args()
    workloads = [
        Workload("trivial calls", trivial, args.trivial_tasks, (1_000, 10_000, 50_000, 125_000)),
        Workload("heavy calls (~2 ms each)", heavy, args.heavy_tasks, (1, 4, 16, 50)),
    ]
    method: str = args.context
    ctx = multiprocessing.get_context(method)
    print(f"{args.workers} workers, start method {args.context}, best of {args.repeat} rounds\n")
    with (
        ctx.Pool(args.workers) as stdlib,
        ProcessPoolExecutor(args.workers, mp_context=ctx) as executor,
        Pool(args.workers, context=args.context) as pool,
    ):
        warm = range(args.workers * 4)
        stdlib.map(trivial, warm, chunksize=1)
        list(executor.map(trivial, warm))
        pool.map(trivial, warm, chunksize=1)
        for workload in workloads:
            runs = contenders(workload, stdlib, executor, pool)
            best = dict.fromkeys(runs, math.inf)
            for _ in range(args.repeat):
                for label, run in runs.items():
                    best[label] = min(best[label], timed(run))
            rates = {label: _tasks(label, workload) / seconds for label, seconds in best.items()}
            tuned = max((label for label in rates if label.startswith(_MP)), key=rates.__getitem__)
            reference = rates[tuned]
            executor_rate = next(rate for label, rate in rates.items() if "its defaults," in label)
            print(f"{workload.name}: {workload.tasks} tasks")
            print(f"  {'contender':<64} {'seconds':>8} {'tasks/s':>10} {'ratio':>6}")
            for label, seconds in best.items():
                rate = rates[label]
                mark = "  <- tuned" if label == tuned else ""
                print(f"  {label:<64} {seconds:>8.3f} {rate:>10.0f} {rate / reference:>6.2f}{mark}")
            for label, rate in rates.items():
                if label.startswith("channels.Pool"):
                    name = label.split(" (")[0]
                    print(
                        f"  {name}: {rate / reference:.2f}x the tuned multiprocessing.Pool.imap, "
                        f"{rate / executor_rate:.1f}x ProcessPoolExecutor.map with its defaults"
                    )
            print()


def _tasks(label: str, workload: Workload) -> int:
    """How many tasks the row ran: all of them, or the executor's few."""
    if "its defaults," in label:
        return min(workload.tasks, 5_000)
    return workload.tasks


if __name__ == "__main__":
    main()
