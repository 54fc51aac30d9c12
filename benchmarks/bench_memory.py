"""Resident memory of a sender and a receiver over a long run, on every backend.

One producer process sends ``--count`` items (64-byte bytes by default) one at
a time to one consumer process; the parent reads each one's ``VmRSS`` from
``/proc/PID/status`` every ``--every`` seconds. Reported per process, in MiB:
at the start (after the channel is open and the process is ready), the peak,
and the end (after the last item), and the growth (end - start). The aim: the
RSS stays flat, a few MiB at most, on every backend.

Run: ``python benchmarks/bench_memory.py [--backend pipe queue ...] [--count N]``
(default: 1,000,000 items on pipe, queue, simplequeue and manager). Linux only.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event

from channels import Receiver, Sender, open_channel

_MIB = 1 << 20


def _rss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _producer(tx: Sender[object], count: int, size: int, go: Event, done: Event) -> None:
    payload = b"x" * size
    go.wait()
    with tx:
        for _ in range(count):
            tx.send(payload)
    done.set()
    time.sleep(0.5)  # stay alive long enough for the end to be sampled


def _consumer(rx: Receiver[object], go: Event, done: Event) -> None:
    go.wait()
    for _ in rx:
        pass
    done.set()
    time.sleep(0.5)


class _Track:
    def __init__(self, process: BaseProcess) -> None:
        assert process.pid is not None
        self.pid = process.pid
        self.start = self.peak = self.end = _rss(self.pid) or 0

    def sample(self) -> None:
        now = _rss(self.pid)
        if now is not None:
            self.peak = max(self.peak, now)
            self.end = now


def measure(backend: str, count: int, size: int, every: float) -> dict[str, dict[str, float]]:
    """Run one backend; return start/peak/end/growth in MiB for the sender and receiver."""
    ctx = multiprocessing.get_context("fork")
    ch = open_channel[object](backend)
    go, sent, received = ctx.Event(), ctx.Event(), ctx.Event()
    tx = ch.sender.clone()
    ch.close()
    sender = ctx.Process(target=_producer, args=(tx, count, size, go, sent), daemon=True)
    receiver = ctx.Process(target=_consumer, args=(ch.receiver, go, received), daemon=True)
    sender.start()
    receiver.start()  # tx is the producer's: closing it here would close it there too
    time.sleep(0.3)  # both have imported what they need and wait on `go`
    tracks = {"sender": _Track(sender), "receiver": _Track(receiver)}
    started = time.monotonic()
    go.set()
    deadline = started + 600
    while not (sent.is_set() and received.is_set()):
        died = (not sender.is_alive() and not sent.is_set()) or (
            not receiver.is_alive() and not received.is_set()
        )
        if died or time.monotonic() > deadline:
            sender.kill()
            receiver.kill()
            raise SystemExit(f"{backend}: a process died or the run took too long")
        for track in tracks.values():
            track.sample()
        time.sleep(every)
    for track in tracks.values():
        track.sample()
    elapsed = time.monotonic() - started
    sender.join(10)
    receiver.join(10)
    ch.receiver.close()
    out = {
        name: {
            "start": t.start / _MIB,
            "peak": t.peak / _MIB,
            "end": t.end / _MIB,
            "growth": (t.end - t.start) / _MIB,
        }
        for name, t in tracks.items()
    }
    out["run"] = {"seconds": elapsed, "items_per_s": count / elapsed}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Measure each backend and print one line per process."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", nargs="+", default=["pipe", "queue", "simplequeue", "manager"])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--every", type=float, default=0.02, help="sampling period, seconds")
    args = parser.parse_args(argv)
    print(f"{args.count:,} items of {args.size} bytes, 1 -> 1; RSS in MiB")
    print(f"{'backend':12} {'process':9} {'start':>8} {'peak':>8} {'end':>8} {'growth':>8}")
    for backend in args.backend:
        print(f"measuring {backend}...", file=sys.stderr, flush=True)
        result = measure(backend, args.count, args.size, args.every)
        for name in ("sender", "receiver"):
            r = result[name]
            print(
                f"{backend:12} {name:9} {r['start']:8.1f} {r['peak']:8.1f} "
                f"{r['end']:8.1f} {r['growth']:+8.1f}"
            )
        run = result["run"]
        print(f"{backend:12} {'(run)':9} {run['seconds']:.1f} s, {run['items_per_s']:,.0f} items/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
