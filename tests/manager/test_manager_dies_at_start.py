"""A child started with a sender handle counts as its holder on a manager server from its pid.

So a child that dies at start (the spawn mistake: no ``if __name__ ==
"__main__":``) or crashes before it ever sent breaks the channel for its
receivers, instead of leaving them waiting for ever; a child that lives, sends
and closes is untouched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import channels
from channels import ChannelBroken
from channels._backends.manager import core as manager_core
from channels._backends.manager.keys import ENV_AUTHKEY
from channels._backends.manager.manager import ChannelManager

import children
from support import WAIT, drain, join, open_for, pid_alive, start

#: The start methods that hand a child its handles by pickling them as it starts.
STARTING = ["spawn", "forkserver"]
#: A crash must show within this (within a slice of the child's death, on a quiet machine).
DETECTED_WITHIN = 5.0
KEY = "a key for the tests of children that die at start"


@pytest.fixture
def server() -> Iterator[ChannelManager]:
    """A manager server on a loopback TCP port, in a process of its own."""
    with ChannelManager(address=("127.0.0.1", 0), authkey=KEY) as manager:
        yield manager


def _broken_soon(receiver: channels.Receiver[object]) -> None:
    started = time.monotonic()
    with pytest.raises(ChannelBroken, match="died without closing"):
        receiver.recv(timeout=WAIT)
    assert time.monotonic() - started < DETECTED_WITHIN


@pytest.mark.parametrize("method", STARTING)
def test_a_child_that_outlives_its_starter_still_counts_as_alive(method: str) -> None:
    ch = open_for("manager", method)
    pids = open_for("queue", method)
    starter = start(
        method, children.hand_on_and_die, method, ch.clone(), ["late"], 1.0, pids.clone()
    )
    ch.close()
    pids.close()
    assert join(starter) == [-9]
    (orphan,), _ = drain(pids)
    # The starter is gone and the child has not sent yet: the channel waits for it.
    assert drain(ch) == (["late"], "EndOfChannel")
    deadline = time.monotonic() + WAIT
    while pid_alive(orphan) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pid_alive(orphan)


def test_where_the_server_cannot_see_its_pids_the_starter_reports_the_death(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ch = open_for("manager", "spawn")
    monkeypatch.setattr(manager_core, "host_key", lambda: "another machine")
    child = start("spawn", children.die_at_once, ch.clone())
    ch.close()
    assert join(child) == [1]
    _broken_soon(ch)


SPAWN_MISTAKE = """\
import multiprocessing
import sys

import channels


def produce(tx: channels.Sender[int]) -> None:
    with tx:
        tx.send(1)


# No `if __name__ == "__main__":`: the child runs this again as it starts, and dies.
method, address = sys.argv[1:]
ch = channels.open_channel[int]("manager", address=address)
child = multiprocessing.get_context(method).Process(target=produce, args=(ch.clone(),))
child.start()
ch.close()
try:
    print("got", ch.recv(timeout=20))
except channels.ChannelBroken as exc:
    print("broken:", exc)
child.join(20)
"""


@pytest.mark.parametrize("method", STARTING)
def test_the_spawn_mistake_breaks_the_channel_instead_of_hanging(
    method: str, server: ChannelManager, tmp_path: Path
) -> None:
    script = tmp_path / "mistake.py"
    script.write_text(SPAWN_MISTAKE)
    address = server.client_params()[0]
    assert isinstance(address, tuple)
    host, port = address
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script), method, f"{host}:{port}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, ENV_AUTHKEY: KEY},
    )
    assert "broken: every process that sent on an open sender handle has died" in done.stdout
    assert "bootstrapping phase" in done.stderr  # the child's own error
    assert time.monotonic() - started < 15
