"""Fault injection: fault kind x where it strikes x backend x start method.

Each case asserts the exact outcome and that it came within a deadline; the
autouse leak check then makes sure nothing was left behind. Hard faults
(SIGKILL, ``os._exit``, a segfault) skip every ``with`` block, so the handle is
never closed; soft ones (an exception, Ctrl-C) unwind and close it. The full
matrix runs under forkserver (the default from Python 3.14 on); fork and spawn
run its most telling row.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest

import children
from children import HARD_FAULTS, SOFT_FAULTS
from support import BOUNDED_BACKENDS, PROCESS_BACKENDS, WAIT, drain, join, open_for, start

#: A matrix suite: .ci/run runs it after the default set (scripts/test -m extended).
pytestmark = [pytest.mark.processes, pytest.mark.extended]

#: A fault must show within this (it shows within a 50 ms slice; the rest is a noisy machine).
DETECTED_WITHIN = 5.0
ITEMS = [1, "two", (3,)]


def _cases(wheres: list[str], kinds: tuple[str, ...]) -> list[tuple[str, str, str]]:
    full = [("forkserver", where, kind) for where in wheres for kind in kinds]
    diagonal = [(m, "after_send", k) for m in ("fork", "spawn") for k in ("sigkill", "exception")]
    return full + [c for c in diagonal if c[1] in wheres and c[2] in kinds]


@pytest.mark.parametrize("backend", PROCESS_BACKENDS)
@pytest.mark.parametrize(
    ("method", "where", "kind"), _cases(["before_send", "after_send"], HARD_FAULTS + SOFT_FAULTS)
)
def test_a_producer_fault(backend: str, method: str, where: str, kind: str) -> None:
    ch = open_for(backend, method)
    producer = start(method, children.faulty_producer, ch.clone(), ITEMS, kind, where)
    ch.close()
    sent = [] if where == "before_send" else ITEMS
    if kind in SOFT_FAULTS:
        expected = "EndOfChannel"  # the with block closed the handle on the way out
    elif where == "after_send":
        expected = "ChannelBroken"  # a sender died without closing
    elif method != "fork":
        # The handle was handed to the child as it started: the child counts as its
        # holder, so dying before it sent is a crash too.
        expected = "ChannelBroken"
    else:
        expected = "ChannelTimeout"  # a holder that never sent cannot be told from a slow one
    exitcode = join(producer)[0]
    died = time.monotonic()
    items, stop = drain(ch, timeout=DETECTED_WITHIN if expected != "ChannelTimeout" else 0.5)
    assert (items, stop) == (sent, expected)
    if expected != "ChannelTimeout":
        assert time.monotonic() - died < DETECTED_WITHIN
    assert (
        exitcode
        == {
            "sigkill": -signal.SIGKILL,
            "exit": 3,
            "segfault": -signal.SIGSEGV,
            "exception": 1,
            "sigint": 1,
        }[kind]
    )


@pytest.mark.parametrize("backend", PROCESS_BACKENDS)
@pytest.mark.parametrize("method", ["forkserver", "fork", "spawn"])
def test_an_unpicklable_item_in_a_child(backend: str, method: str) -> None:
    ch = open_for(backend, method)
    producer = start(method, children.unpicklable_then_fine, ch.clone())
    ch.close()
    assert drain(ch) == (["fine after the bad item"], "EndOfChannel")
    assert join(producer) == [0]


@pytest.mark.parametrize("backend", PROCESS_BACKENDS)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_a_receiver_struck_while_blocked_in_recv(backend: str, sig: int) -> None:
    method = "forkserver"
    ch = open_for(backend, method)
    ready = multiprocessing.get_context(method).Semaphore(0)
    receiver = start(method, children.blocked_receiver, ch.receiver, ready)
    assert ready.acquire(timeout=WAIT)
    time.sleep(0.3)  # let it block
    assert receiver.pid is not None
    os.kill(receiver.pid, sig)
    join(receiver)
    ch.send("for whoever is left")
    assert ch.recv(timeout=DETECTED_WITHIN) == "for whoever is left"
    ch.close()
    assert drain(ch) == ([], "EndOfChannel")


@pytest.mark.parametrize("backend", BOUNDED_BACKENDS)
@pytest.mark.parametrize(
    ("sig", "expected"), [(signal.SIGKILL, "ChannelBroken"), (signal.SIGINT, "EndOfChannel")]
)
def test_a_sender_struck_while_blocked_on_a_full_channel(
    backend: str, sig: int, expected: str
) -> None:
    method = "forkserver"
    ch = open_for(backend, method, maxsize=3)
    ready = multiprocessing.get_context(method).Semaphore(0)
    sender = start(method, children.blocked_sender, ch.clone(), ready)
    ch.close()
    assert ready.acquire(timeout=WAIT)
    time.sleep(0.3)  # let it block on the full channel
    assert sender.pid is not None
    os.kill(sender.pid, sig)
    join(sender)
    died = time.monotonic()
    items, stop = drain(ch, timeout=DETECTED_WITHIN)
    assert (items, stop) == ([0, 1, 2], expected)
    assert time.monotonic() - died < DETECTED_WITHIN
