"""The redis backend beside a hand-written redis-py Streams loop, in one run.

Batched: ``send_many`` of 100 / ``recv_many(100)`` against pipelined XADD of
100, XREADGROUP COUNT 100 and one XACK per batch. Unbatched: ``send`` / ``recv``
against one XADD, one XREADGROUP COUNT 1 and one XACK per item. Both sides
pickle their items, a producer process sends while this process receives, and
each case runs on a fresh stream of a private redis-server (or ``--url``'s).

    python benchmarks/bench_redis.py [--items 20000] [--url redis://HOST:PORT]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pickle
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, cast

import redis

import channels

ITEM = {"id": 0, "name": "job", "payload": "x" * 64}
BATCH = 100


def _item(i: int) -> dict[str, Any]:
    return {**ITEM, "id": i}


# -- the hand-written loops -----------------------------------------------------------


def _raw_produce(address: tuple[str, int], key: str, count: int, batch: int) -> None:
    client = redis.Redis(host=address[0], port=address[1])
    for start in range(0, count, batch):
        if batch == 1:
            client.xadd(key, {"d": pickle.dumps(_item(start))})
            continue
        pipe = client.pipeline(transaction=False)  # pyright: ignore[reportUnknownMemberType]
        for i in range(start, min(start + batch, count)):
            pipe.xadd(key, {"d": pickle.dumps(_item(i))})
        pipe.execute()
    client.close()


def _raw_consume(address: tuple[str, int], key: str, count: int, batch: int) -> int:
    client = redis.Redis(host=address[0], port=address[1])
    got = 0
    while got < count:
        reply: Any = client.xreadgroup("g", "c", {key: ">"}, count=batch, block=1000)
        if not reply:
            continue
        entries = reply[0][1]
        for _, fields in entries:
            pickle.loads(fields[b"d"])
        client.xack(key, "g", *[entry_id for entry_id, _ in entries])
        got += len(entries)
    client.close()
    return got


def run_raw(address: tuple[str, int], count: int, batch: int) -> float:
    key = f"bench:raw:{time.monotonic_ns()}"
    client = redis.Redis(host=address[0], port=address[1])
    client.xgroup_create(key, "g", id="0", mkstream=True)
    started = time.perf_counter()
    producer = _start(_raw_produce, address, key, count, batch)
    _raw_consume(address, key, count, batch)
    elapsed = time.perf_counter() - started
    producer.join()
    client.delete(key)
    client.close()
    return count / elapsed


# -- the backend ------------------------------------------------------------------------


def _channel_produce(url: str, count: int, batch: int) -> None:
    with channels.open_sender[dict[str, Any]](url) as tx:
        if batch == 1:
            for i in range(count):
                tx.send(_item(i))
            return
        for start in range(0, count, batch):
            tx.send_many([_item(i) for i in range(start, min(start + batch, count))])


def run_channel(url: str, count: int, batch: int) -> float:
    rx = channels.open_receiver[dict[str, Any]](url)
    started = time.perf_counter()
    producer = _start(_channel_produce, url, count, batch)
    got = 0
    if batch == 1:
        for _ in rx:
            got += 1
    else:
        while True:
            try:
                got += len(rx.recv_many(batch))
            except channels.EndOfChannel:
                break
    elapsed = time.perf_counter() - started
    producer.join()
    assert got == count, (got, count)
    return count / elapsed


# -- plumbing -----------------------------------------------------------------------------


def _start(target: Callable[..., None], *args: object) -> BaseProcess:
    make = cast("Callable[..., BaseProcess]", multiprocessing.get_context("fork").Process)
    process = make(target=target, args=args, daemon=True)
    process.start()
    return process


def _pings(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")


class PrivateRedis:
    """A private redis-server on a free port, stopped by its PID."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server)")
        self.folder = Path(tempfile.mkdtemp(prefix="bench-redis-"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        pidfile = self.folder / "pid"
        subprocess.run(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(self.folder), "--daemonize", "yes", "--pidfile", str(pidfile)],
            check=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                if pidfile.read_text().strip() and _pings(self.port):
                    break
            except (OSError, redis.ConnectionError):
                pass
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.02)
        self.pid = int(pidfile.read_text())

    def stop(self) -> None:
        os.kill(self.pid, signal.SIGTERM)
        shutil.rmtree(self.folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--items", type=int, default=20000, help="items per batched case")
    parser.add_argument("--url", help="an existing server, redis://HOST:PORT (default: private)")
    args = parser.parse_args()
    server = None if args.url else PrivateRedis()
    base = args.url or f"redis://127.0.0.1:{server.port if server else 0}"
    host, _, port = base.split("//")[1].partition(":")
    address = (host, int(port or 6379))
    try:
        rows: list[tuple[str, float, float]] = []
        for label, batch, count in (
            ("batched (100 per call)", BATCH, args.items),
            ("unbatched", 1, max(1000, args.items // 4)),
        ):
            raw = run_raw(address, count, batch)
            ours = run_channel(f"{base}/bench-{batch}-{time.monotonic_ns()}", count, batch)
            rows.append((label, raw, ours))
        print(f"{'case':24} {'redis-py loop':>15} {'redis backend':>15} {'ratio':>7}")
        for label, raw, ours in rows:
            print(f"{label:24} {raw:>11,.0f}/s {ours:>11,.0f}/s {ours / raw:>6.2f}x")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
