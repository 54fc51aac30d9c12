"""Large items through shared memory on the local backends: views, kills, no leftovers."""

from __future__ import annotations

import gc
import mmap
import os
import pickle
import signal
import time
from typing import Any

import pytest

import channels
from channels import ConfigError

from leaks import named_shared_memory
from local_kill import kill_at
from support import LOCAL_BACKENDS, WAIT, drain, join, open_for, start

BIG = 1 << 20  # the default threshold


def _backed_by_shared_memory(view: object) -> bool:
    """Whether a received buffer's chain of owners ends in a mapping."""
    seen = 0
    while view is not None and seen < 10:
        if isinstance(view, mmap.mmap):
            return True
        view = getattr(view, "obj", None) or getattr(view, "base", None)
        seen += 1
    return False


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_large_items_arrive_whole_and_in_order_among_small_ones(backend: str) -> None:
    ch = open_for(backend)
    items: list[Any] = [
        b"small",
        b"b" * (3 * BIG),
        bytearray(b"c" * (2 * BIG)),
        {"buffer": pickle.PickleBuffer(bytearray(b"d" * BIG)), "n": 1},
        b"",
        b"e" * (BIG - 1),  # just under the threshold: in band
    ]
    for item in items:
        ch.send(item)
    ch.close()
    got, how = drain(ch)
    assert how == "EndOfChannel"
    assert got[0] == b"small"
    assert got[1] == items[1]
    assert type(got[1]) is bytes
    assert got[2] == items[2]
    assert type(got[2]) is bytearray
    assert bytes(got[3]["buffer"]) == b"d" * BIG
    assert got[4:] == [b"", items[5]]
    # Memory with no name: nothing in /dev/shm for a crash to leave behind.
    assert named_shared_memory(os.getpid()) == set()


def test_a_received_array_is_a_writable_view_of_shared_memory() -> None:
    np = pytest.importorskip("numpy")
    ch = open_for("queue")
    sent = np.arange(BIG, dtype=np.float64)
    ch.send(sent)
    ch.send(np.arange(10))  # small: an ordinary copy
    got = ch.recv(timeout=WAIT)
    assert (got == sent).all()
    assert _backed_by_shared_memory(got.base)
    got[0] = -1.0  # the receiver's own
    assert sent[0] == 0
    small = ch.recv(timeout=WAIT)
    assert not _backed_by_shared_memory(small.base)
    del got
    gc.collect()
    ch.close()


def test_the_threshold_can_be_set_or_turned_off() -> None:
    np = pytest.importorskip("numpy")
    off = open_for("queue", None, shm_threshold=0)
    off.send(np.zeros(BIG))
    assert not _backed_by_shared_memory(off.recv(timeout=WAIT).base)
    low = open_for("pipe", None, shm_threshold=1000)
    low.send(np.zeros(200))  # 1600 bytes
    assert _backed_by_shared_memory(low.recv(timeout=WAIT).base)
    off.close()
    low.close()
    for bad in (-1, 1.5, True, "big"):
        with pytest.raises(ConfigError, match="shm_threshold"):
            open_for("queue", None, shm_threshold=bad)


def _sum_items(receiver: channels.Receiver[Any], results: channels.Sender[int]) -> None:
    with results:
        for item in receiver:
            named = named_shared_memory(os.getpid())  # while the item's memory is mapped
            results.send(-1 if named else sum(bytes(item)[::4096]) + len(item))


def test_large_items_cross_processes_under_every_start_method(method: str) -> None:
    ch = open_for("queue", method)
    results = open_for("queue", method)
    consumer = start(method, _sum_items, ch.receiver, results.clone())
    results.close()
    items = [bytes([i]) * (BIG + i * 4096) for i in range(1, 6)]
    ch.send_many(items)
    ch.close()
    got, how = drain(results)
    assert how == "EndOfChannel"
    assert got == [sum(item[::4096]) + len(item) for item in items]
    assert join(consumer) == [0]
    assert named_shared_memory(os.getpid()) == set()


def _send(sender: channels.Sender[Any], item: object) -> None:
    sender.send(item, timeout=WAIT)


def _recv(receiver: channels.Receiver[Any]) -> None:
    receiver.recv(timeout=WAIT)


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_a_sender_killed_after_shipping_leaves_an_orphan_that_is_dropped(backend: str) -> None:
    ch = open_for(backend)
    kill_at("shm:shipped", _send, ch.sender, b"x" * (2 * BIG))
    ch.send(b"y" * (2 * BIG))  # its ticket is newer: the orphan is closed, this one taken
    ch.close()
    got, how = drain(ch)
    assert (len(got), how) == (1, "EndOfChannel")
    assert got[0] == b"y" * (2 * BIG)
    assert named_shared_memory(os.getpid()) == set()


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_a_receiver_killed_while_redeeming_loses_only_its_item(backend: str) -> None:
    ch = open_for(backend)
    ch.send(b"a" * (2 * BIG))
    ch.send(b"b" * (2 * BIG))
    kill_at("shm:redeeming", _recv, ch.receiver)
    ch.close()
    got, how = drain(ch)
    assert how == "EndOfChannel"
    assert got == [b"b" * (2 * BIG)]
    assert named_shared_memory(os.getpid()) == set()


def _ship_forever(sender: channels.Sender[Any]) -> None:
    while True:
        sender.send(b"z" * (2 * BIG), timeout=WAIT)


def test_killing_every_process_of_a_channel_leaves_nothing_in_dev_shm(method: str) -> None:
    ch = open_for("queue", method)
    sender = start(method, _ship_forever, ch.clone())
    receiver = start(method, _recv_forever, ch.receiver)
    deadline = time.monotonic() + WAIT
    while ch.stats().received < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    for child in (sender, receiver):  # nothing named that a kill could leave behind
        assert named_shared_memory(child.pid or 0) == set()
        os.kill(child.pid or 0, signal.SIGKILL)
    assert join(sender, receiver) == [-signal.SIGKILL] * 2
    ch.close()
    del ch
    gc.collect()
    assert named_shared_memory(os.getpid()) == set()


def _recv_forever(receiver: channels.Receiver[Any]) -> None:
    for _ in receiver:
        pass


def test_shared_memory_is_reused_only_once_its_receiver_let_go() -> None:
    np = pytest.importorskip("numpy")
    ch = open_for("queue")
    first = ch.sender
    first.send(np.full(BIG, 1.0))
    held = ch.recv(timeout=WAIT)
    for fill in (2.0, 3.0, 4.0):  # while the first is held, its memory is not used again
        first.send(np.full(BIG, fill))
        assert (ch.recv(timeout=WAIT) == fill).all()  # each let go at once: reused
        assert (held == 1.0).all()
    del held
    gc.collect()
    for fill in (5.0, 6.0):
        first.send(np.full(BIG, fill))
        assert (ch.recv(timeout=WAIT) == fill).all()
    ch.close()


def test_memory_a_forked_child_still_maps_is_not_reused() -> None:
    np = pytest.importorskip("numpy")
    ch = open_for("queue", "fork")
    ch.send(np.full(BIG, 7.0))
    held = ch.recv(timeout=WAIT)
    child = start("fork", _hold_and_check_inherited, ch, held)
    del held  # the parent lets go; the child still maps the memory
    gc.collect()
    assert ch.recv(timeout=WAIT) == 0.0
    for fill in (8.0, 9.0):
        ch.send(np.full(BIG, fill))
        ch.send(0.5)  # nobody takes the large items here: the child only checks its own
    assert join(child) == [0]
    ch.close()


def _hold_and_check_inherited(ch: channels.Channel[Any], held: Any) -> None:
    """In a forked child: the array inherited from the parent must stay whole."""
    ch.send(0.0)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and ch.stats().waiting < 3:
        time.sleep(0.01)
    time.sleep(0.2)
    if not (held == 7.0).all():
        os._exit(3)
