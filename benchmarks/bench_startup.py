"""Start-up: what ``import channels`` and a fresh pool's first result cost, beside the stdlib.

Every figure comes from fresh interpreters, so nothing is cached in memory
(the files are in the page cache, as for any program started twice):

- ``import channels`` beside ``import multiprocessing.queues``, as
  ``python -X importtime`` reports them (the cumulative microseconds of the
  top-level module; goal: at most 3x), and as wall time with a first use:
  one item sent and received on a ``pipe`` channel, and on a
  ``multiprocessing.Queue``;
- the first result of a fresh 2-worker pool: from the ``import`` statement to
  the first ``apply`` result, for ``channels.Pool``, ``multiprocessing.Pool``
  and ``ProcessPoolExecutor``, under each start method asked for (goal:
  ``channels.Pool`` at most 1.0x ``multiprocessing.Pool`` under forkserver and
  spawn). The interpreter's own start and exit are left out: each child times
  itself.

The package's bytecode is compiled first, as installing it does (where
``PYTHONDONTWRITEBYTECODE`` is set, every run would compile it again, and the
figures would measure the compiler). The contenders take turns within each
round; each figure is the median of ``--rounds`` rounds, and each ratio is the
median of the per-round ratios (lower is faster). Run:
``python benchmarks/bench_startup.py [--rounds R] [--methods forkserver spawn] [--json]``.
"""

from __future__ import annotations

import argparse
import compileall
import json
import multiprocessing
import statistics
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import channels

_IMPORTS = ("channels", "multiprocessing.queues")

_FIRST_USE = {
    "import channels, send and receive on a pipe channel": (
        "import channels\n"
        "ch = channels.open_channel[int]('pipe')\n"
        "ch.send(1); ch.recv(); ch.close()\n"
    ),
    "import multiprocessing, put and get on a Queue": (
        "import multiprocessing\n"
        "q = multiprocessing.Queue()\n"
        "q.put(1); q.get(); q.close(); q.join_thread()\n"
    ),
}

_POOLS = {
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
        "ctx = multiprocessing.get_context({method!r})\n"
        "with ProcessPoolExecutor(2, mp_context=ctx) as pool:\n"
        "    pool.submit(abs, -1).result()\n"
        "    elapsed = time.perf_counter() - start\n"
    ),
}


def import_time_us(module: str) -> float:
    """The cumulative import time ``-X importtime`` reports for ``module``, in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    for line in done.stderr.splitlines():
        fields = [field.strip() for field in line.removeprefix("import time:").split("|")]
        if len(fields) == 3 and fields[2] == module:
            return float(fields[1])
    raise RuntimeError(f"-X importtime reported no line for {module}:\n{done.stderr}")


def timed_child(body: str) -> float:
    """Seconds a fresh interpreter spends on ``body``, timed by itself (start-up excluded)."""
    code = (
        "import time\n"
        "start = time.perf_counter()\n"
        "elapsed = None\n"
        f"{body}"
        "if elapsed is None:\n"
        "    elapsed = time.perf_counter() - start\n"
        "print(elapsed)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return float(done.stdout.split()[-1])


def rounds(
    contenders: dict[str, Callable[[], float]], count: int, anchor: str
) -> dict[str, tuple[float, float]]:
    """Each contender's median over ``count`` interleaved rounds, and its median ratio to anchor."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for turn in range(count):
        order = list(contenders)
        if turn % 2:
            order.reverse()
        for name in order:
            samples[name].append(contenders[name]())
    return {
        name: (
            statistics.median(values),
            statistics.median(v / a for v, a in zip(values, samples[anchor], strict=True)),
        )
        for name, values in samples.items()
    }


def _table(title: str, unit: str, scale: float, results: dict[str, tuple[float, float]]) -> None:
    print(title)
    for name, (value, ratio) in results.items():
        print(f"  {name:<50} {value * scale:>9.1f} {unit}  {ratio:>5.2f}x")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["forkserver", "spawn"],
        choices=multiprocessing.get_all_start_methods(),
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    compileall.compile_dir(Path(channels.__file__).parent, quiet=1)
    report: dict[str, dict[str, tuple[float, float]]] = {}

    imports = rounds(
        {name: partial(import_time_us, name) for name in _IMPORTS},
        args.rounds,
        anchor="multiprocessing.queues",
    )
    report["import (-X importtime, us)"] = imports
    first_use = rounds(
        {name: partial(timed_child, body) for name, body in _FIRST_USE.items()},
        args.rounds,
        anchor="import multiprocessing, put and get on a Queue",
    )
    report["first use (s)"] = first_use
    for method in args.methods:
        pools = rounds(
            {
                name: partial(timed_child, body.format(method=method))
                for name, body in _POOLS.items()
            },
            args.rounds,
            anchor="multiprocessing.Pool",
        )
        report[f"first result, {method} (s)"] = pools

    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"medians of {args.rounds} rounds; ratios against the last row's anchor\n")
    _table("import, -X importtime cumulative (anchor: multiprocessing.queues)", "ms", 1e-3, imports)
    _table("import and first use, wall (anchor: multiprocessing.Queue)", "ms", 1e3, first_use)
    for method in args.methods:
        _table(
            f"fresh 2-worker pool, import to first result, {method} (anchor: multiprocessing.Pool)",
            "ms",
            1e3,
            report[f"first result, {method} (s)"],
        )
    ratio = imports["channels"][1]
    print(f"import channels: {ratio:.2f}x multiprocessing.queues (goal <= 3x)")
    for method in args.methods:
        ratio = report[f"first result, {method} (s)"]["channels.Pool"][1]
        print(f"first result under {method}: {ratio:.2f}x multiprocessing.Pool (goal <= 1.0x)")


if __name__ == "__main__":
    main()
