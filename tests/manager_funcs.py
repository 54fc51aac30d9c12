"""Child-process targets for the manager tests; importable so spawn and forkserver find them."""

from __future__ import annotations

import os
import time
from multiprocessing.synchronize import Event, Semaphore
from typing import cast

import channels

WAIT = 20.0


def recv_and_report(receiver: channels.Receiver[object], results: channels.Sender[object]) -> None:
    """Say "ready", block in one ``recv``, then report ``(outcome, item, time.time())``."""
    results.send("ready", timeout=WAIT)
    try:
        item = receiver.recv(timeout=WAIT)
        outcome = "item"
    except channels.ChannelError as exc:
        item, outcome = None, type(exc).__name__
    results.send((outcome, item, time.time()), timeout=WAIT)
    results.close()


def send_and_report(sender: channels.Sender[object], results: channels.Sender[object]) -> None:
    """Say "ready", block in one ``send`` on a full channel, then report ``(outcome, time)``."""
    results.send("ready", timeout=WAIT)
    try:
        sender.send("late", timeout=WAIT)
        outcome = "sent"
    except channels.ChannelError as exc:
        outcome = type(exc).__name__
    results.send((outcome, time.time()), timeout=WAIT)
    results.close()


def drain_and_report(receiver: channels.Receiver[object], results: channels.Sender[object]) -> None:
    """Receive until the channel stops; report ``(items, what stopped it, time.time())``."""
    items: list[object] = []
    while True:
        try:
            items.append(receiver.recv(timeout=WAIT))
        except channels.ChannelError as exc:
            results.send((items, type(exc).__name__, time.time()), timeout=WAIT)
            results.close()
            return


def send_and_vanish(
    sender: channels.Sender[object],
    items: list[object],
    sent: Semaphore | None = None,
    go: Event | None = None,
) -> None:
    """Send ``items`` without closing, then exit at once (after ``go`` is set, if given)."""
    for item in items:
        sender.send(item, timeout=WAIT)
    if sent is not None and go is not None:
        sent.release()
        go.wait(WAIT)
    os._exit(3)


def use_a_channel_that_arrives(inbox: channels.Receiver[object]) -> None:
    """Receive a manager channel as an item, send a greeting on it and close it."""
    received = inbox.recv(timeout=WAIT)
    assert isinstance(received, channels.Sender)
    channel = cast("channels.Sender[object]", received)
    with channel:
        channel.send(f"hello from {os.getpid()}", timeout=WAIT)


def consume_by_spec(spec: str, results: channels.Sender[object]) -> None:
    """Open ``spec`` only to receive: close its own sender half, say "opened", drain, report."""
    ch = channels.open_channel[int](spec)
    ch.sender.close()
    results.send("opened", timeout=WAIT)
    drain_and_report(ch.receiver, results)


def produce_by_spec(spec: str, count: int) -> None:
    """Open ``spec``, send ``0 .. count - 1`` and close."""
    with channels.open_channel[int](spec) as ch:
        for i in range(count):
            ch.send(i, timeout=WAIT)
