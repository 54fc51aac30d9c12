"""Manager calls keep their deadline whatever the server does, and lose or repeat nothing.

The server is stopped with SIGSTOP (a stalled machine, a long pause): every call
must come back by its own deadline, and once the server runs again, each item
is in the channel exactly once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import cast

import pytest

from channels import ChannelTimeout, WouldBlock
from channels._backends.manager import ManagerChannel
from channels._backends.manager.core import ManagerCore
from channels._backends.manager.manager import ChannelManager
from channels._engine.sender import SenderHandle

from support import WAIT

KEY = secrets.token_hex(24)

#: How late a call may come back after its deadline here: generous, for a loaded
#: machine; the server's own grace, which calls used to wait, is 20 s.
LATE = 3.0


@pytest.fixture
def server() -> Iterator[ChannelManager]:
    with ChannelManager(address=("127.0.0.1", 0), authkey=KEY) as manager:
        yield manager


@contextlib.contextmanager
def stalled(manager: ChannelManager) -> Generator[None]:
    """The server process stopped (SIGSTOP) for the block, running again after it."""
    assert manager.process is not None
    pid = manager.process.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + WAIT
        while _state(pid) != "T":  # the signal takes effect a moment later
            assert time.monotonic() < deadline, "the server process did not stop"
            time.sleep(0.01)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def timed(call: Callable[[], object]) -> tuple[BaseException | None, float]:
    """What ``call`` raised (None if nothing), and how long it took."""
    started = time.monotonic()
    try:
        call()
    except Exception as exc:
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


def test_every_call_keeps_its_deadline_on_a_stalled_server(server: ChannelManager) -> None:
    ch = ManagerChannel[int](manager=server, name="stall", maxsize=10)
    for i in range(5):
        ch.send(i, timeout=WAIT)
    with stalled(server):
        results = {
            "send_nowait": timed(lambda: ch.send_nowait(100)),
            "send": timed(lambda: ch.send(101, timeout=0.1)),
            "recv_nowait": timed(ch.recv_nowait),
            "recv": timed(lambda: ch.recv(timeout=0.1)),
            "recv_many": timed(lambda: ch.recv_many(3, timeout=0.2)),
            "send again": timed(lambda: ch.send(102, timeout=0.1)),
        }
    errors = {name: type(exc).__name__ for name, (exc, _) in results.items()}
    assert errors == {
        "send_nowait": "WouldBlock",
        "send": "ChannelTimeout",
        "recv_nowait": "WouldBlock",
        "recv": "ChannelTimeout",
        "recv_many": "ChannelTimeout",
        "send again": "ChannelTimeout",
    }
    allowed = {"send_nowait": 1.0, "recv_nowait": 1.0, "recv_many": 0.2}
    for name, (_, took) in results.items():
        assert took < allowed.get(name, 0.1) + LATE, (name, took)
    # Running again, the server undoes what the calls that gave up had begun.
    ch.send(5, timeout=WAIT)
    ch.sender.close()
    assert list(ch.receiver) == [0, 1, 2, 3, 4, 5]
    stats = ch.receiver.stats()
    assert (stats.sent, stats.received) == (6, 6)


def test_a_take_that_gave_up_gives_its_items_back_to_the_next_receiver(
    server: ChannelManager,
) -> None:
    ch = ManagerChannel[str](manager=server, name="giveback")
    ch.send("a", timeout=WAIT)
    ch.send("b", timeout=WAIT)
    with stalled(server), pytest.raises(WouldBlock):
        ch.recv_nowait()
    other = ManagerChannel[str](manager=server, name="giveback")
    assert other.recv(timeout=WAIT) == "a"
    assert ch.recv(timeout=WAIT) == "b"
    other.close()
    ch.close()


def test_a_bounded_send_that_gave_up_holds_no_room(server: ChannelManager) -> None:
    ch = ManagerChannel[int](manager=server, name="room", maxsize=1)
    with stalled(server), pytest.raises(ChannelTimeout):
        ch.send(1, timeout=0.2)
    ch.send(2, timeout=WAIT)  # the room the stalled send asked for came back
    with pytest.raises(ChannelTimeout):
        ch.send(3, timeout=0.2)
    assert ch.recv(timeout=WAIT) == 2
    ch.close()


def test_async_calls_keep_their_deadline_on_a_stalled_server(server: ChannelManager) -> None:
    ch = ManagerChannel[int](manager=server, name="astall")
    ch.send(0, timeout=WAIT)
    assert ch.recv(timeout=WAIT) == 0

    async def main() -> tuple[BaseException | None, float]:
        started = time.monotonic()
        try:
            await ch.arecv(timeout=0.2)
        except Exception as exc:
            return exc, time.monotonic() - started
        return None, time.monotonic() - started

    with stalled(server):
        exc, took = asyncio.run(main())
    assert isinstance(exc, ChannelTimeout)
    assert took < 0.2 + LATE
    ch.send(1, timeout=WAIT)
    assert ch.recv(timeout=WAIT) == 1
    ch.close()


def test_the_core_steps_come_back_by_their_deadline(server: ChannelManager) -> None:
    """What an async face runs off the event loop, one step at a time, is never stuck long."""
    ch = ManagerChannel[int](manager=server, name="steps")
    core = cast(ManagerCore, cast("SenderHandle[int]", ch.sender)._core)
    with stalled(server):
        for step in (
            lambda: core.put(core.first_token, [b"x"], time.monotonic() + 0.1),
            lambda: core.take(1, time.monotonic() + 0.1),
            lambda: core.wait(False, 0.1),
        ):
            exc, took = timed(step)
            assert exc is None or isinstance(exc, ChannelTimeout)
            assert took < 0.1 + LATE
    stats = ch.stats()
    assert (stats.sent, stats.waiting) == (0, 0)
    ch.close()


def test_calls_without_a_timeout_wait_out_a_stall_and_lose_nothing(
    server: ChannelManager,
) -> None:
    ch = ManagerChannel[int](manager=server, name="patient")
    got: list[int] = []
    receiver = threading.Thread(target=lambda: got.append(ch.recv()))
    with stalled(server):
        receiver.start()
        sender = threading.Thread(target=lambda: ch.send(1))
        sender.start()
        time.sleep(0.5)
        assert receiver.is_alive()  # still waiting for the server
    sender.join(WAIT)
    receiver.join(WAIT)
    assert got == [1]
    ch.sender.close()
    assert list(ch.receiver) == []
    assert ch.receiver.stats().received == 1
