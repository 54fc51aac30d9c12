"""Stopping a child at a named protocol point (``channels._engine.steps``) and killing it there."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from typing import Any

from channels._engine import steps as _steps

from support import WAIT


def stopped(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 :].split()[0] == b"T"


def kill_at(point: str, target: Any, *args: object) -> None:
    """Run ``target(*args)`` in a forked child that stops at ``point``, then SIGKILL it there."""
    child = multiprocessing.get_context("fork").Process(target=_paused, args=(point, target, *args))
    child.start()
    deadline = time.monotonic() + WAIT
    while not stopped(child.pid or 0):
        assert child.exitcode is None, f"the child ended ({child.exitcode}) before {point}"
        assert time.monotonic() < deadline, f"the child never reached {point}"
        time.sleep(0.005)
    os.kill(child.pid or 0, signal.SIGKILL)
    child.join(WAIT)
    assert child.exitcode == -signal.SIGKILL


def _paused(point: str, target: Any, *args: object) -> None:
    _steps.pause_at(point)
    target(*args)
