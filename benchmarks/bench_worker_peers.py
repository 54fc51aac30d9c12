"""``channels worker`` beside Celery and RQ: no-op tasks through one private redis-server.

Each system gets the same ``--tasks`` no-op tasks (``noop(x)`` returns ``x``),
queued before its workers start, the same number of worker processes
(``--workers``) and the same redis-server, started here on a free loopback port
without persistence. Each keeps a result per task in redis, as it does by
default: ``channels worker`` sends it to its outbox, Celery stores it in its
redis result backend, RQ in its finished-job registry.

A system's rate is its steady rate: the tasks done from the moment the first
result is seen until the last, over that time, so that the seconds each takes
to start its workers (Celery's are the slowest) do not count. How results are
seen: the bench reads ``channels``' outbox, and polls the count of Celery's
results (``DBSIZE`` of its own database) and of RQ's finished jobs
(``ZCARD`` of the registry) every 5 ms. The systems take turns, one run each
per round; each rate is the best of ``--repeat`` rounds, and the ratio is
``channels worker``'s rate over the other's.

Defaults are kept: Celery's prefork pool with its prefetch, RQ's worker (one
``rq worker --burst`` per process, which forks a work horse per job); RQ's
``SimpleWorker``, which runs jobs in the worker itself, is measured too. The
default RQ worker runs only ``--forking-tasks`` tasks (300), as it is slow. Celery
and RQ come from the ``bench`` extra; one not installed is left out.
Run: ``python benchmarks/bench_worker_peers.py [--tasks N] [--workers W] [--repeat R] [--json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Generator
from functools import partial
from pathlib import Path
from typing import Protocol, cast

import redis

import channels

_TASKS_MODULE = '''\
"""The no-op task each system runs, and Celery's app when its worker imports this."""

import os


def noop(x):
    return x


if os.environ.get("BENCH_CELERY_BROKER"):
    from celery import Celery

    app = Celery(
        "benchtasks",
        broker=os.environ["BENCH_CELERY_BROKER"],
        backend=os.environ["BENCH_CELERY_BACKEND"],
    )
    app.conf.update(worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)
    celery_noop = app.task(name="benchtasks.noop")(noop)
'''

_POLL = 0.005
_WAIT = 300.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Generator[int, None, None]:
    """A redis-server on a free loopback port, without persistence; yields its port."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit(
            "bench_worker_peers: needs redis-server on PATH "
            "(Debian/Ubuntu: apt-get install redis-server)"
        )
    port = _free_port()
    folder = tempfile.mkdtemp(prefix="bench-redis-")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", folder]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()  # pyright: ignore[reportUnknownMemberType]
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.02)
        client.close()
        yield port
    finally:
        server.terminate()
        server.wait(20)
        shutil.rmtree(folder, ignore_errors=True)


class _Result(Protocol):
    """What the bench needs of a Celery task's ``apply_async``."""

    def __call__(self, args: tuple[int], queue: str) -> object: ...


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _watch(count: Callable[[], int], tasks: int, processes: list[subprocess.Popen[bytes]]) -> float:
    """Poll ``count`` until it reaches ``tasks``; the steady rate from the first result seen."""
    deadline = time.monotonic() + _WAIT
    first_at, first_count = 0.0, 0
    while True:
        done = count()
        now = time.perf_counter()
        if done and not first_at:
            first_at, first_count = now, done
        if done >= tasks:
            return (tasks - first_count) / (now - first_at)
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done} of {tasks} tasks done after {_WAIT} s")
        if any(p.poll() not in (None, 0) for p in processes):
            raise RuntimeError(f"a worker failed after {done} of {tasks} tasks")
        time.sleep(_POLL)


def run_channels(port: int, folder: Path, tasks: int, workers: int) -> float:
    """``channels worker``: the inbox filled and ended first, the outbox read here."""
    run = uuid.uuid4().hex[:8]
    inbox = f"redis://127.0.0.1:{port}/inbox-{run}"
    outbox = f"redis://127.0.0.1:{port}/outbox-{run}"
    results = channels.open_receiver[int](outbox)
    sender = channels.open_sender[int](inbox)
    for start in range(0, tasks, 1000):
        sender.send_many(range(start, min(start + 1000, tasks)))
    sender.close()
    command = [sys.executable, "-m", "channels", "worker", "benchtasks:noop"]
    command += ["--inbox", inbox, "--outbox", outbox, "--workers", str(workers)]
    worker = subprocess.Popen(command, cwd=folder, stderr=subprocess.DEVNULL)
    try:
        first_at, done = 0.0, 0
        for _ in results:
            done += 1
            if done == 1:
                first_at = time.perf_counter()
        rate = (done - 1) / (time.perf_counter() - first_at)
        if done != tasks:
            raise RuntimeError(f"channels worker returned {done} of {tasks} results")
        worker.wait(_WAIT)
        return rate
    finally:
        _stop(worker)
        results.close()


def run_celery(port: int, folder: Path, tasks: int, workers: int) -> float:
    """A Celery prefork worker with ``workers`` processes; results in redis database 1."""
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "BENCH_CELERY_BROKER": f"redis://127.0.0.1:{port}/0",
        "BENCH_CELERY_BACKEND": f"redis://127.0.0.1:{port}/1",
    }
    os.environ.update(env)
    module = importlib.import_module("benchtasks")
    send = cast("_Result", module.celery_noop.apply_async)
    results = redis.Redis(port=port, db=1)
    results.flushdb()  # pyright: ignore[reportUnknownMemberType]
    for i in range(tasks):
        send(args=(i,), queue=queue)
    command = [sys.executable, "-m", "celery", "-A", "benchtasks", "worker", "-c", str(workers)]
    command += ["-P", "prefork", "-Q", queue, "--loglevel", "WARNING"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    worker = subprocess.Popen(
        command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        return _watch(
            results.dbsize,  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
            tasks,
            [worker],
        )
    finally:
        _stop(worker)
        results.close()


def run_rq(
    port: int, folder: Path, tasks: int, workers: int, worker_class: str | None = None
) -> float:
    """``workers`` RQ workers in burst mode (by default each forks a work horse per job)."""
    rq = importlib.import_module("rq")
    registry_type = importlib.import_module("rq.registry").FinishedJobRegistry
    client = redis.Redis(port=port)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    queue = rq.Queue(name, connection=client)
    noop = importlib.import_module("benchtasks").noop
    for start in range(0, tasks, 1000):
        batch = [rq.Queue.prepare_data(noop, (i,)) for i in range(start, min(start + 1000, tasks))]
        queue.enqueue_many(batch)
    key = str(registry_type(name, connection=client).key)
    command = [sys.executable, "-m", "rq.cli", "worker", "--burst", "--quiet"]
    command += ["--url", f"redis://127.0.0.1:{port}/0", name]
    if worker_class is not None:
        command += ["--worker-class", worker_class]
    pool = [
        subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    try:
        return _watch(lambda: client.zcard(key), tasks, pool)
    finally:
        for process in pool:
            _stop(process)
        client.close()


def _installed(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--forking-tasks",
        type=int,
        default=300,
        help="tasks for RQ's default worker, which forks per job (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    systems: dict[str, Callable[[int, Path, int, int], float]] = {"channels worker": run_channels}
    if _installed("celery"):
        systems["Celery"] = run_celery
    if _installed("rq"):
        # A work horse forked per job makes RQ's default worker slow: it gets fewer tasks,
        # since the rate, not the total time, is compared.
        few = min(args.tasks, args.forking_tasks)
        systems["RQ"] = lambda port, folder, _, workers: run_rq(port, folder, few, workers)
        systems["RQ, SimpleWorker"] = partial(run_rq, worker_class="rq.worker.SimpleWorker")
    best = dict.fromkeys(systems, 0.0)
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp, redis_server() as port:
        folder = Path(tmp)
        (folder / "benchtasks.py").write_text(_TASKS_MODULE)
        sys.path.insert(0, str(folder))
        for turn in range(args.repeat):
            order = list(systems) if turn % 2 == 0 else list(reversed(systems))
            for name in order:
                best[name] = max(best[name], systems[name](port, folder, args.tasks, args.workers))
    anchor = best["channels worker"]
    if args.json:
        print(json.dumps({"tasks": args.tasks, "workers": args.workers, "rates": best}, indent=2))
        return
    missing = sorted({"Celery", "RQ"} - {name.split(",")[0] for name in systems})
    print(
        f"{args.tasks} no-op tasks, {args.workers} worker processes, one redis-server, "
        f"best of {args.repeat} rounds"
        + (f"; not installed: {', '.join(missing)}" if missing else "")
    )
    print(f"  {'system':<18} {'tasks/s':>10} {'channels worker over it':>24}")
    for name, rate in best.items():
        print(f"  {name:<18} {rate:>10.0f} {anchor / rate:>23.2f}x")
    for name in systems:
        if name != "channels worker":
            print(f"channels worker: {anchor / best[name]:.2f}x {name} (goal >= 3x)")


if __name__ == "__main__":
    main()
