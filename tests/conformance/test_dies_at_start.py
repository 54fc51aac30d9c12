"""A child started with a sender handle (spawn, forkserver) counts as its sender from its pid.

On every backend: a child that dies at start (the spawn mistake: no ``if
__name__ == "__main__":``) or crashes before it ever sent breaks the channel
for every receiver, instead of leaving them waiting for ever; a child that
lives, however slowly, sends and closes is untouched. What differs by backend
(a manager server that cannot see the pid, a redis child outliving its starter,
the mistake run as a real script) is tested beside each backend.
"""

from __future__ import annotations

import time

import pytest

from channels import ChannelBroken

import children
from support import REDIS_LEASE, WAIT, drain, join, open_for, start

#: A matrix suite: .ci/run runs it after the default set (scripts/test -m extended).
pytestmark = pytest.mark.extended

#: The start methods that hand a child its handles by pickling them as it starts.
STARTING = ["spawn", "forkserver"]
#: A crash shows within this: a redis lease (the slowest), and a few slices on a busy machine.
DETECTED_WITHIN = REDIS_LEASE + 4.0


@pytest.mark.parametrize("method", STARTING)
def test_a_child_that_dies_before_it_sends_breaks_the_channel(backend: str, method: str) -> None:
    ch = open_for(backend, method)
    child = start(method, children.die_at_once, ch.clone())
    ch.close()
    assert join(child) == [1]
    started = time.monotonic()
    with pytest.raises(ChannelBroken, match="died"):
        ch.recv(timeout=WAIT)
    assert time.monotonic() - started < DETECTED_WITHIN


@pytest.mark.parametrize("method", STARTING)
def test_other_receivers_see_the_crash_while_its_starter_only_waits(
    backend: str, method: str
) -> None:
    ch = open_for(backend, method)
    results = open_for("queue", method)
    child = start(method, children.die_at_once, ch.clone())
    ch.close()  # the starter's last call on the channel: it names the child here
    consumer = start(method, children.consume, ch.receiver, results.clone())
    results.close()
    started = time.monotonic()
    assert drain(results) == ([("ChannelBroken", [])], "EndOfChannel")
    assert time.monotonic() - started < DETECTED_WITHIN + 5  # the consumer starts first
    assert join(child, consumer) == [1, 0]


@pytest.mark.parametrize("method", STARTING)
def test_a_child_that_sends_delivers_everything_and_ends_cleanly(backend: str, method: str) -> None:
    ch = open_for(backend, method)
    items = list(range(200))
    child = start(method, children.produce, ch.clone(), items)
    ch.close()
    assert drain(ch) == (items, "EndOfChannel")
    assert join(child) == [0]


@pytest.mark.parametrize("method", STARTING)
def test_a_slow_child_that_only_closes_ends_the_channel(backend: str, method: str) -> None:
    """Longer than a redis lease and many waiting slices without a send: still alive."""
    ch = open_for(backend, method)
    child = start(method, children.produce_later, ch.clone(), [], REDIS_LEASE * 1.5)
    ch.close()
    assert drain(ch) == ([], "EndOfChannel")
    assert join(child) == [0]
