"""A child started with a sender handle holds a sender's lease on a redis channel from its pid.

The process that starts it takes the lease out and keeps it fresh while the
child runs, and so does the child itself from its first instruction: so a child
that dies at start (the spawn mistake: no ``if __name__ == "__main__":``) or
crashes before it ever sent breaks the channel within its lease, instead of
leaving receivers waiting for ever, while a child that lives is never taken
for dead, even once the process that started it is gone.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import children
from redis_server import SKIP_REASON, shared
from support import REDIS_LEASE, WAIT, drain, join, open_for, pid_alive, start

pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")

#: The start methods that hand a child its handles by pickling them as it starts.
STARTING = ["spawn", "forkserver"]


@pytest.mark.parametrize("method", STARTING)
def test_a_child_that_outlives_its_starter_keeps_its_own_lease(method: str) -> None:
    ch = open_for("redis", method)
    pids = open_for("queue", method)
    delay = 3 * REDIS_LEASE  # the lease its starter took out lapses meanwhile, unless renewed
    starter = start(
        method, children.hand_on_and_die, method, ch.clone(), ["late"], delay, pids.clone()
    )
    ch.close()
    pids.close()
    assert join(starter) == [-9]
    (orphan,), _ = drain(pids)
    assert drain(ch) == (["late"], "EndOfChannel")
    deadline = time.monotonic() + WAIT
    while pid_alive(orphan) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pid_alive(orphan)


SPAWN_MISTAKE = """\
import multiprocessing
import sys

import channels


def produce(tx: channels.Sender[int]) -> None:
    with tx:
        tx.send(1)


# No `if __name__ == "__main__":`: the child runs this again as it starts, and dies.
method, address, name = sys.argv[1:]
ch = channels.open_channel[int]("redis", address=address, name=name, lease=1.0)
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
    method: str, tmp_path: Path
) -> None:
    script = tmp_path / "mistake.py"
    script.write_text(SPAWN_MISTAKE)
    name = f"mistake-{time.monotonic_ns()}"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script), method, shared().address, name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "broken:" in done.stdout, done.stderr
    assert "bootstrapping phase" in done.stderr  # the child's own error
    assert time.monotonic() - started < 15
