"""``channels worker`` on one machine: its throughput, and how soon a lost machine is noticed.

Against a private ``redis-server`` (started as ``bench_redis.py`` starts it), in one run:

* throughput: ``--items`` no-op items (``operator:pos``) through ``channels
  worker --workers N``, from the start of the command to the end of the
  outbox, beside the anchor: the same items sent and received by one process
  through a redis channel, the least any relay of them costs;
* a lost machine: ``channels worker`` running slow items is SIGKILLed, and a
  reader of its outbox times the kill to ``ChannelBroken``, as a ratio of the
  outbox's lease (the promise: within about one lease).

    python benchmarks/bench_worker.py [--items 3000] [--workers 2] [--repeat 3] [--lease 1]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from bench_redis import PrivateRedis as Server

import channels


def _url(server: Server, name: str) -> str:
    return f"redis://127.0.0.1:{server.port}/{name}"


def _worker(target: str, inbox: str, outbox: str, workers: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "channels", "worker", target]
    options = ["--inbox", inbox, "--outbox", outbox, "--workers", str(workers)]
    return subprocess.Popen([*command, *options], stderr=subprocess.DEVNULL)


def throughput(server: Server, items: int, workers: int, run: int) -> tuple[float, float]:
    """Items per second: through ``channels worker``, and the anchor."""
    inbox, outbox = _url(server, f"in-{run}"), _url(server, f"out-{run}")
    with channels.open_sender[int](inbox) as feed:
        feed.send_many(range(items))
    results = channels.open_receiver[int](outbox)
    start = time.perf_counter()
    worker = _worker("operator:pos", inbox, outbox, workers)
    got = sum(1 for _ in results)
    took = time.perf_counter() - start
    worker.wait(60)
    assert got == items, got
    anchor = channels.open_channel[int](_url(server, f"anchor-{run}"))
    start = time.perf_counter()
    for x in range(items):
        anchor.send(x)
        anchor.recv()
    base = time.perf_counter() - start
    anchor.close()
    return items / took, items / base


def lost_machine(server: Server, lease: float, workers: int, run: int) -> float:
    """Seconds from the SIGKILL of ``channels worker`` to ``ChannelBroken`` for its readers."""
    inbox = _url(server, f"slow-in-{run}") + f"?lease={lease:g}"
    outbox = _url(server, f"slow-out-{run}") + f"?lease={lease:g}"
    with channels.open_sender[float](inbox) as feed:
        feed.send_many([0.01] * 5000)
    results = channels.open_receiver[None](outbox)
    worker = _worker("time:sleep", inbox, outbox, workers)
    results.recv_many(10, timeout=60)
    worker.kill()
    killed = time.monotonic()
    try:
        while True:
            results.recv(timeout=60)
    except channels.ChannelBroken:
        took = time.monotonic() - killed
    worker.wait(60)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lease", type=float, default=1.0)
    args = parser.parse_args()
    server = Server()
    try:
        rates = [throughput(server, args.items, args.workers, n) for n in range(args.repeat)]
        worker_rate = statistics.median(r for r, _ in rates)
        anchor_rate = statistics.median(a for _, a in rates)
        print(
            f"throughput: channels worker {worker_rate:,.0f} items/s, one process's send+recv "
            f"{anchor_rate:,.0f} items/s: {worker_rate / anchor_rate:.2f}x"
        )
        breaks = [lost_machine(server, args.lease, args.workers, n) for n in range(args.repeat)]
        ratios = ", ".join(f"{took / args.lease:.2f}" for took in breaks)
        print(f"lost machine: ChannelBroken after {ratios} lease(s) (lease {args.lease:g} s)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
