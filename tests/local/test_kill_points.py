"""A process killed at every step of the local channels' lock protocols.

Each case stops a child at one named point (``channels._engine.steps``) with SIGSTOP,
kills it there with SIGKILL, and checks what the survivors see: nothing hangs,
the channel keeps working, and each item is where the protocol says it must be.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from typing import Any

import pytest

import channels
from channels import ChannelBroken, EndOfChannel
from channels._backends.local.core import LocalCore
from channels._engine import steps as _steps

from local_kill import kill_at, stopped
from support import LOCAL_BACKENDS, WAIT, drain, open_for

#: Outcome of each point: whether the dying process's item is in the channel
#: ("kept"), not ("absent"), taken with the dying receiver ("lost"), or whether
#: the channel is broken because the dead process tore a multi-word update.
SEND_POINTS = {
    "send:locked": "absent",
    "send:written": "kept",
    "send:counted": "kept",
}
SPILL_POINTS = {
    "overflow:frame-written": "absent",
    "overflow:jump-marked": "torn",
    "overflow:ring-moved": "torn",
}
RECV_POINTS = {
    "recv:locked": "kept",
    "recv:taking": "kept",
    "recv:taken": "lost",
    "recv:counted": "lost",
}
#: Paused there (not killed): the end must not be decided from flags read after the look.
EMPTY_POINT = "recv:empty"
BOOK_POINTS = ("close:slot-closed", "close:count-lowered", "close:forgotten")
# Tested in test_large_items.py: the orphaned or half-redeemed memory is dropped.
SHM_POINTS = ("shm:shipped", "shm:redeeming")
CLONE_POINTS = ("clone:slot-opened", "clone:count-raised")


def test_every_point_is_covered() -> None:
    covered = {
        *SEND_POINTS,
        *SPILL_POINTS,
        *RECV_POINTS,
        EMPTY_POINT,
        *BOOK_POINTS,
        *CLONE_POINTS,
        *SHM_POINTS,
    }
    assert covered == {p for points in _steps.POINTS.values() for p in points}


def _send(sender: channels.Sender[object], item: object) -> None:
    sender.send(item, timeout=WAIT)


def _recv(receiver: channels.Receiver[object]) -> None:
    receiver.recv(timeout=WAIT)


def _send_many(sender: channels.Sender[object], items: list[object]) -> None:
    sender.send_many(items, timeout=WAIT)


def _recv_many(receiver: channels.Receiver[object], count: int) -> None:
    receiver.recv_many(count, timeout=WAIT)


def _close(sender: channels.Sender[object]) -> None:
    sender.close()


def _clone(sender: channels.Sender[object]) -> None:
    sender.clone()


def _core(ch: channels.Channel[Any]) -> LocalCore:
    core = ch.sender._core  # type: ignore[attr-defined]
    assert isinstance(core, LocalCore)
    return core


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
@pytest.mark.parametrize(("point", "fate"), SEND_POINTS.items())
def test_a_sender_killed_while_sending(backend: str, point: str, fate: str) -> None:
    ch = open_for(backend, None, **({"maxsize": 4} if backend == "queue" else {}))
    ch.send("before")
    kill_at(point, _send, ch.sender, "dying")
    ch.send("after", timeout=WAIT)  # the dead holder's lock was handed on
    ch.close()
    expected = ["before", "dying", "after"] if fate == "kept" else ["before", "after"]
    assert drain(ch) == (expected, "EndOfChannel")


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
@pytest.mark.parametrize(("point", "fate"), SPILL_POINTS.items())
def test_a_sender_killed_while_writing_the_overflow(backend: str, point: str, fate: str) -> None:
    ch = open_for(backend, None, shm_threshold=0)  # every item through the overflow file
    # Larger than a pipe frame; 2 MiB is larger than the first ring: it moves to a larger one.
    big = b"x" * (10_000 if fate == "absent" else 2 << 20)
    ch.send("before")
    kill_at(point, _send, ch.sender, big)
    if fate == "torn":
        with pytest.raises(ChannelBroken, match="middle of"):
            ch.send("after", timeout=WAIT)
        with pytest.raises(ChannelBroken, match="middle of"):
            ch.recv(timeout=WAIT)
        return
    ch.send("after", timeout=WAIT)
    ch.close()
    assert drain(ch) == (["before", "after"], "EndOfChannel")


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
@pytest.mark.parametrize(("point", "fate"), RECV_POINTS.items())
def test_a_receiver_killed_while_taking(backend: str, point: str, fate: str) -> None:
    bounded = backend == "queue"
    ch = open_for(backend, None, **({"maxsize": 3} if bounded else {}))
    for item in ("first", "second", "third"):
        ch.send(item)
    kill_at(point, _recv, ch.receiver)
    rest = ["second", "third"] if fate == "lost" else ["first", "second", "third"]
    if bounded:
        # The next receive repairs the count: towards more room, never less. A
        # reader that died after it began to take counts as having taken.
        assert ch.recv(timeout=WAIT) == rest.pop(0)
        room = 0
        while room < 5:
            try:
                ch.send_nowait(f"new{room}")
            except channels.WouldBlock:
                break
            rest.append(f"new{room}")
            room += 1
        assert room == (1 if point == "recv:locked" else 2)
    ch.close()
    assert drain(ch) == (rest, "EndOfChannel")


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
@pytest.mark.parametrize(
    ("point", "fate"), [*SEND_POINTS.items(), ("overflow:frame-written", "absent")]
)
def test_a_sender_killed_while_sending_a_batch(backend: str, point: str, fate: str) -> None:
    """A batch goes to the overflow and one store commits it: all of it, or none."""
    ch = open_for(backend)
    ch.send("before")
    kill_at(point, _send_many, ch.sender, ["a", "b", "c"])
    ch.send("after", timeout=WAIT)
    ch.close()
    batch = ["a", "b", "c"] if fate == "kept" else []
    assert drain(ch) == (["before", *batch, "after"], "EndOfChannel")


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
@pytest.mark.parametrize(("point", "fate"), RECV_POINTS.items())
def test_a_receiver_killed_while_taking_a_run(backend: str, point: str, fate: str) -> None:
    """Once the pipe is drained, ``recv_many`` takes a run of the overflow with one store."""
    ch = open_for(backend)
    ch.send_many(["first", "a", "b", "c", "last"])
    assert ch.recv(timeout=WAIT) == "first"  # the pipe is seen drained: runs from now on
    kill_at(point, _recv_many, ch.receiver, 3)
    ch.close()
    rest = ["last"] if fate == "lost" else ["a", "b", "c", "last"]
    assert drain(ch) == (rest, "EndOfChannel")


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
@pytest.mark.parametrize("before", ["split", "unsplit", "whole batch"])
@pytest.mark.parametrize(("point", "fate"), RECV_POINTS.items())
def test_a_receiver_killed_while_splitting_a_stored_batch(
    backend: str, before: str, point: str, fate: str
) -> None:
    """A stored batch (one pickle) taken in parts: a receiver killed at any step took
    at most the items it asked for, and the rest stays, in order, for the next take."""
    ch = open_for(backend)
    left = ["a", "b", "c", "d", "e", "f"]
    if before == "whole batch":  # the dying take passes a whole batch before it splits one
        ch.send_many(["x", "y"])
        left = ["x", "y", *left]
    ch.send_many(["a", "b", "c", "d", "e", "f"])
    if before == "split":  # the batch is already split: its taken count is in place
        assert ch.recv_many(2, timeout=WAIT) == ["a", "b"]
        left = left[2:]
    kill_at(point, _recv_many, ch.receiver, 3)
    ch.close()
    rest = left[3:] if fate == "lost" else left
    assert drain(ch) == (rest, "EndOfChannel")


def _recv_after_the_end(receiver: channels.Receiver[object]) -> None:
    _steps.pause_at(EMPTY_POINT)
    try:
        got = receiver.recv(timeout=WAIT)
    except EndOfChannel:
        os._exit(3)  # the end was decided before the last item was seen
    os._exit(0 if got == "last" else 4)


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_an_item_sent_just_before_the_end_is_not_missed(backend: str) -> None:
    """A receiver that found the channel empty, then saw the end, had not seen the last
    item sent and committed before that end: it must take it, not end."""
    ch = open_for(backend, None)
    child = multiprocessing.get_context("fork").Process(
        target=_recv_after_the_end, args=(ch.receiver,)
    )
    child.start()
    deadline = time.monotonic() + WAIT
    while not stopped(child.pid or 0):  # it found the channel empty
        assert child.exitcode is None
        assert time.monotonic() < deadline, f"the child never reached {EMPTY_POINT}"
        time.sleep(0.005)
    ch.send("last")
    ch.close()  # the end, stored after the item
    os.kill(child.pid or 0, signal.SIGCONT)
    child.join(WAIT)
    assert child.exitcode == 0


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
@pytest.mark.parametrize("point", BOOK_POINTS)
def test_a_process_killed_while_closing_a_handle(backend: str, point: str) -> None:
    ch = open_for(backend)
    clone = ch.clone()
    ch.send("item")
    kill_at(point, _close, clone)
    assert clone.closed
    assert not ch.closed
    ch.send("more", timeout=WAIT)
    ch.close()  # the last open handle: the end reaches the receiver
    assert drain(ch) == (["item", "more"], "EndOfChannel")
    assert _core(ch)._ledger.open_handles == 0


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
@pytest.mark.parametrize("point", CLONE_POINTS)
def test_a_process_killed_while_cloning(backend: str, point: str) -> None:
    ch = open_for(backend)
    kill_at(point, _clone, ch.sender)
    core = _core(ch)
    ch.send("item", timeout=WAIT)
    assert ch.recv(timeout=WAIT) == "item"
    # The half-made handle counts as open, like any handle a dead process held
    # without sending: the books agree with the slots once repaired.
    ch.close()
    assert core._ledger.open_handles == 1
    with pytest.raises(channels.ChannelTimeout):
        ch.recv(timeout=0.2)


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_a_receiver_killed_with_the_read_lock_under_spawn(backend: str) -> None:
    """The protocol does not depend on the start method: a spawned waiter hands on its lock."""
    ch = open_for(backend, "spawn")
    ctx = multiprocessing.get_context("spawn")
    waiter = ctx.Process(target=_recv, args=(ch.receiver,))
    waiter.start()
    time.sleep(0.3)
    waiter.kill()
    waiter.join(WAIT)
    ch.send("after")
    assert ch.recv(timeout=WAIT) == "after"
    ch.close()
    with pytest.raises(EndOfChannel):
        ch.recv(timeout=WAIT)
