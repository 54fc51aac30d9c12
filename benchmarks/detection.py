"""How fast a channel notices a dead peer: from SIGKILL to the error, per backend.

Each case blocks the main thread in the call that must notice (``recv``, or a
``send`` on a full channel), kills the peer from a timer thread, and measures
from the kill to the exception. Prints the median and worst of ``--repeat``
runs. The documented bound is one poll slice (50 ms) plus process teardown.

    python benchmarks/detection.py [--repeat 5] [--context forkserver]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any, cast

import channels
from channels._backends.manager.core import ManagerCore

BACKENDS = ["pipe", "queue", "simplequeue", "manager"]


def _send_then_wait(sender: channels.Sender[int]) -> None:
    sender.send(1)
    time.sleep(60)


def _recv_then_wait(receiver: channels.Receiver[int]) -> None:
    receiver.recv()
    time.sleep(60)


def _start(ctx: Any, target: Callable[..., None], *args: object) -> BaseProcess:
    process = cast(BaseProcess, ctx.Process(target=target, args=args, daemon=True))
    process.start()
    return process


def _time_to_broken(victim: BaseProcess, blocked: Callable[[], object]) -> float:
    """Kill ``victim`` from a timer while ``blocked()`` waits; seconds until ChannelBroken."""
    killed: list[float] = []

    def kill() -> None:
        killed.append(time.monotonic())
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)

    threading.Timer(0.2, kill).start()
    try:
        blocked()
    except channels.ChannelBroken:
        took = time.monotonic() - killed[0]
    else:
        raise AssertionError("no ChannelBroken")
    victim.join(5)
    return took


def senders_gone(backend: str, method: str) -> float:
    """A receiver blocked in recv; the only sender that sent is killed."""
    ctx = multiprocessing.get_context(method)
    ch = channels.open_channel[int](backend, context=method)
    child = _start(ctx, _send_then_wait, ch.clone())
    ch.close()
    assert ch.recv(timeout=20) == 1
    return _time_to_broken(child, lambda: ch.recv(timeout=20))


def receivers_gone(backend: str, method: str) -> float:
    """A sender blocked on a full channel; the only receiver is killed."""
    ctx = multiprocessing.get_context(method)
    ch = channels.open_channel[int](backend, context=method, maxsize=1)
    child = _start(ctx, _recv_then_wait, ch.receiver)
    ch.send(0)
    deadline = time.monotonic() + 20
    while True:  # wait until the child has taken item 0, then fill the channel
        try:
            ch.send_nowait(1)
            break
        except channels.WouldBlock:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    took = _time_to_broken(child, lambda: ch.send(2, timeout=20))
    ch.close()
    return took


def server_gone(backend: str, method: str) -> float:
    """A receiver blocked in recv on a manager channel; the server is killed."""
    ch = channels.ManagerChannel[int](context=method)
    core = ch.sender._core  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]
    assert isinstance(core, ManagerCore)
    assert core.manager is not None
    server = core.manager.process
    assert server is not None
    return _time_to_broken(server, lambda: ch.recv(timeout=20))


CASES: list[tuple[str, Callable[[str, str], float], list[str]]] = [
    ("every sender killed -> blocked recv", senders_gone, BACKENDS),
    ("every receiver killed -> blocked send", receivers_gone, ["queue", "manager"]),
    ("manager server killed -> blocked recv", server_gone, ["manager"]),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--context", default="forkserver")
    args = parser.parse_args(argv)
    print(f"start method {args.context}, {args.repeat} runs each; milliseconds from SIGKILL")
    print(f"{'case':40} {'backend':12} {'median':>8} {'worst':>8}")
    for title, case, backends in CASES:
        for backend in backends:
            runs = [1000 * case(backend, args.context) for _ in range(args.repeat)]
            print(f"{title:40} {backend:12} {statistics.median(runs):8.1f} {max(runs):8.1f}")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
