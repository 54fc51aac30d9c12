"""Targets for child processes; importable so spawn and forkserver can find them."""

from __future__ import annotations

import os
import signal
import time
from multiprocessing.synchronize import Semaphore

import channels

from support import start


def produce(sender: channels.Sender[object], items: list[object], close: bool = True) -> None:
    """Send ``items`` in order, then close the handle (or not)."""
    for item in items:
        sender.send(item, timeout=20)
    if close:
        sender.close()


def produce_tagged(sender: channels.Sender[object], tag: int, count: int) -> None:
    """Send ``(tag, 0) .. (tag, count - 1)`` and close."""
    with sender:
        for i in range(count):
            sender.send((tag, i), timeout=20)


def produce_and_die(sender: channels.Sender[object], items: list[object], how: str) -> None:
    """Send ``items`` without closing, then die: ``exit`` (os._exit) or ``kill`` (SIGKILL)."""
    for item in items:
        sender.send(item, timeout=20)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(7)


def hold_and_die(sender: channels.Sender[object]) -> None:
    """Hold a sender handle, never send on it, and exit without closing."""
    del sender
    os._exit(0)


def die_at_once(sender: channels.Sender[object]) -> None:
    """Die as soon as it runs: before it sends, without closing (a crash at start)."""
    os._exit(1)


def produce_later(sender: channels.Sender[object], items: list[object], delay: float) -> None:
    """Hold the handle for ``delay`` seconds without sending, then send ``items`` and close."""
    time.sleep(delay)
    with sender:
        for item in items:
            sender.send(item, timeout=20)


def hand_on_and_die(
    method: str,
    sender: channels.Sender[object],
    items: list[object],
    delay: float,
    pids: channels.Sender[object],
) -> None:
    """Start ``produce_later`` with ``sender`` under ``method``, report its pid, then SIGKILL
    this process: the child outlives the process that started it."""
    child = start(method, produce_later, sender, items, delay)
    sender.stats()  # a call other than a send: the child is named as the handle's holder
    with pids:
        pids.send(child.pid, timeout=20)
    os.kill(os.getpid(), signal.SIGKILL)


def close_it(sender: channels.Sender[object]) -> None:
    """Close the given handle and nothing else."""
    sender.close()


def consume(receiver: channels.Receiver[object], results: channels.Sender[object]) -> None:
    """Receive to the end; report ``("end"|error name, items)`` on ``results``."""
    items: list[object] = []
    outcome = "end"
    try:
        for item in receiver:
            items.append(item)
    except channels.ChannelError as exc:
        outcome = type(exc).__name__
    with results:
        results.send((outcome, items), timeout=20)


def consume_some(
    receiver: channels.Receiver[object], count: int, results: channels.Sender[object]
) -> None:
    """Receive ``count`` items, close this receiver, report them."""
    items = [receiver.recv(timeout=20) for _ in range(count)]
    receiver.close()
    with results:
        results.send(items, timeout=20)


def recv_then_die(receiver: channels.Receiver[object], count: int) -> None:
    """Receive ``count`` items and exit without closing anything."""
    for _ in range(count):
        receiver.recv(timeout=20)
    os._exit(0)


def sleep_forever() -> None:
    """Block until killed."""
    time.sleep(3600)


def serve_squares(end: channels.Endpoint[str, int]) -> None:
    """Answer each number with its square, as text, until the other end closes."""
    with end:
        for n in end:
            end.send(str(n * n), timeout=20)


def recv_forever(receiver: channels.Receiver[object]) -> None:
    """Block in recv (holding the channel's read lock while it waits) until killed."""
    receiver.recv()


def fill_then_block(sender: channels.Sender[object], results: channels.Sender[object]) -> None:
    """Send until a bounded channel is full and stays full; report how that ended."""
    try:
        while True:
            sender.send("item", timeout=30)
    except channels.ChannelError as exc:
        outcome = type(exc).__name__
    with results:
        results.send(outcome, timeout=20)


def send_one(sender: channels.Sender[object], item: object) -> None:
    """Send one item and keep the handle open."""
    sender.send(item, timeout=60)


HARD_FAULTS = ("sigkill", "exit", "segfault")
SOFT_FAULTS = ("exception", "sigint")


def strike(kind: str) -> None:
    """Fail the way ``kind`` says: a hard death skips every ``with`` block, a soft one unwinds."""
    if kind == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "exit":
        os._exit(3)
    elif kind == "segfault":
        import ctypes

        ctypes.string_at(0)
    elif kind == "exception":
        raise RuntimeError("injected fault")
    elif kind == "sigint":
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.kill(os.getpid(), signal.SIGINT)
    time.sleep(30)  # a signal that has not struck yet does so here


def faulty_producer(
    sender: channels.Sender[object], items: list[object], kind: str, where: str
) -> None:
    """Send ``items`` inside ``with sender``, striking ``kind`` before or after sending."""
    with sender:
        if where == "before_send":
            strike(kind)
        for item in items:
            sender.send(item, timeout=20)
        strike(kind)


def unpicklable_then_fine(sender: channels.Sender[object]) -> None:
    """Try to send what cannot be pickled, then send something that can."""
    with sender:
        try:
            sender.send(lambda: None, timeout=20)
        except channels.SerializationError:
            sender.send("fine after the bad item", timeout=20)


def blocked_receiver(receiver: channels.Receiver[object], ready: Semaphore) -> None:
    """Wait in recv, with SIGINT raising KeyboardInterrupt, until a signal strikes."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ready.release()
    with receiver:
        receiver.recv(timeout=30)


def blocked_sender(sender: channels.Sender[object], ready: Semaphore) -> None:
    """Fill a bounded channel inside ``with sender`` and wait in send until a signal strikes."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with sender:
        n = 0
        while True:
            try:
                sender.send_nowait(n)
            except channels.WouldBlock:
                ready.release()
                sender.send(n, timeout=30)
            n += 1
