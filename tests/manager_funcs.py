"""Child-process targets for the manager tests; importable so spawn and forkserver find them."""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import tempfile
import time
from collections.abc import MutableMapping
from multiprocessing import forkserver
from multiprocessing.connection import Connection
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


def hold_and_wait(
    receiver: channels.Receiver[int], sender: channels.Sender[int], ready: Connection
) -> None:
    """Hold a sender of a manager channel, say so, then wait in ``recv`` until the channel stops."""
    assert not sender.closed
    ready.send(os.getpid())
    try:
        while True:
            receiver.recv(timeout=WAIT)
    except channels.ChannelError:
        pass


def creator(method: str) -> None:
    """Open a private manager channel, start two users of it, report, and wait to be killed.

    The channel's server starts with ``method``; the users are forked. The
    report, one JSON line on stdout, gives their pids and what the temporary
    folder held before the channel was opened.
    """
    if method == "forkserver":
        forkserver.ensure_running()  # its own socket folder is made before the channel's server
    before = sorted(os.listdir(tempfile.gettempdir()))
    ch = channels.open_channel[int]("manager", context=method)
    (server,) = multiprocessing.active_children()  # the channel's manager process
    ctx = multiprocessing.get_context("fork")
    reader, writer = ctx.Pipe(duplex=False)
    users = [
        ctx.Process(target=hold_and_wait, args=(ch.receiver, ch.clone(), writer)) for _ in range(2)
    ]
    for user in users:
        user.start()
    for _ in users:
        assert reader.poll(WAIT)
        reader.recv()
    report = {
        "server": server.pid,
        "users": [user.pid for user in users],
        "temp_before": before,
    }
    print(json.dumps(report), flush=True)
    time.sleep(10 * WAIT)


def limit_descriptors(most: int) -> None:
    """In a server process: open at most ``most`` files and sockets, as a small container does."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (most, hard))


def hold_a_proxy(proxy: MutableMapping[str, int], ready: Connection, go: Event) -> None:
    """Use a managed dict (this process then holds it), say so, and hold it until ``go``."""
    proxy["child"] = 1
    ready.send(len(proxy))
    go.wait(WAIT)
