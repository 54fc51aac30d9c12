"""``Relay``, what ``channels worker`` runs, over local channels: crashes cost a retry."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

import channels
from channels import DeadLetter, Pool, WorkerCrashed
from channels._pool.batches import Marks, install
from channels._pool.relay import Relay

import pool_funcs as f
from support import WAIT, drain

pytestmark = pytest.mark.timeout(60)


def run(
    fn: Any, items: range, *, max_tries: int, dead: bool, batch: int = 1, context: str = "fork"
) -> tuple[list[Any], list[Any], Relay, list[str]]:
    """Relay ``items`` through ``fn`` on one worker; the results, the dead letters, the relay."""
    inbox = channels.open_channel[int]("queue", context="fork")
    outbox = channels.open_channel[object]("queue", context="fork")
    letters = channels.open_channel[DeadLetter[object]]("queue", context="fork")
    inbox.send_many(items)
    inbox.close()
    said: list[str] = []
    marks = Marks(1)
    with Pool(1, context=context, initializer=install, initargs=(marks.shared,)) as pool:
        relay = Relay(
            fn,
            "pool_funcs:fn",
            pool,
            [inbox.receiver],
            outbox.sender,
            marks=marks,
            batch=batch,
            dead_letter=letters.sender if dead else None,
            max_tries=max_tries,
            say=said.append,
        )
        assert relay.join(WAIT)
    outbox.close()
    letters.close()
    results, _ = drain(outbox.receiver)
    given_up, _ = drain(letters.receiver)
    for channel in (inbox, outbox, letters):
        channel.receiver.close()
    return results, given_up, relay, said


def test_a_killed_worker_costs_a_retry_not_the_item(tmp_path: Path) -> None:
    fn = functools.partial(f.killed_once_on, str(tmp_path))
    results, given_up, relay, said = run(fn, range(20), max_tries=3, dead=False)
    assert sorted(results) == list(range(20))
    assert (given_up, relay.failure, relay.retried, relay.done) == ([], None, 1, 20)
    assert "was killed by SIGKILL while running item 3; running it again (try 2 of 3)" in said[0]


def test_an_item_that_keeps_killing_goes_to_the_dead_letter_channel() -> None:
    results, given_up, relay, _ = run(f.exit_on, range(10), max_tries=2, dead=True)
    assert sorted(results) == [x for x in range(10) if x != 3]
    assert [(d.item, d.tries) for d in given_up] == [(3, 2)]
    assert given_up[0].cause.endswith("exited with code 7")
    assert (relay.failure, relay.dead_lettered, relay.holding) == (None, 1, [])


def test_without_a_dead_letter_channel_the_relay_fails_naming_the_item() -> None:
    results, _, relay, _ = run(f.exit_on, range(10), max_tries=2, dead=False)
    assert isinstance(relay.failure, WorkerCrashed)
    assert "item 3 killed 2 worker(s)" in str(relay.failure)
    assert 3 not in results
    assert len(relay.holding) == 1  # the item is not acknowledged


def starts(folder: Path) -> dict[int, int]:
    """How many times each item was started, from the log of ``logged_exit_on``."""
    counts: dict[int, int] = {}
    for line in (folder / "starts").read_text().split():
        counts[int(line)] = counts.get(int(line), 0) + 1
    return counts


# The marks reach the workers however they are started.
@pytest.mark.parametrize("context", ["fork", "spawn", "forkserver"])
def test_a_worker_killed_mid_batch_reruns_only_the_items_without_a_result(
    tmp_path: Path, context: str
) -> None:
    fn = functools.partial(f.logged_exit_on, str(tmp_path), bad=5, kills=1)
    results, given_up, relay, said = run(
        fn, range(30), max_tries=3, dead=False, batch=8, context=context
    )
    assert results == list(range(30))  # every result once, in order: one slot, one worker
    assert (given_up, relay.failure, relay.retried, relay.done) == ([], None, 1, 30)
    assert "exited with code 7 while running item 5; running it again (try 2 of 3)" in said[0]
    counts = starts(tmp_path)
    # The first batch is one item (the next batches are sized by how fast it ran), so
    # 1..8 is the batch that crashed on 5: 1..4 ran, but their results died with the worker.
    assert counts == {x: 2 if 1 <= x <= 5 else 1 for x in range(30)}


def test_an_item_that_keeps_killing_in_a_batch_is_started_max_tries_times(tmp_path: Path) -> None:
    fn = functools.partial(f.logged_exit_on, str(tmp_path), bad=5, kills=99)
    results, given_up, relay, said = run(fn, range(30), max_tries=3, dead=True, batch=8)
    assert results == [x for x in range(30) if x != 5]
    assert [(d.item, d.tries) for d in given_up] == [(5, 3)]
    assert given_up[0].cause.endswith("exited with code 7")
    assert (relay.failure, relay.retried, relay.dead_lettered, relay.holding) == (None, 2, 1, [])
    counts = starts(tmp_path)
    assert counts[5] == 3  # started max_tries times, no more
    assert all(counts[x] == 1 for x in range(30) if not 1 <= x <= 5)
    assert "item 5 sent to the dead-letter channel after 3 tries" in said[-1]


def test_a_raising_item_in_a_batch_is_dead_lettered_and_the_rest_run_once(tmp_path: Path) -> None:
    fn = functools.partial(f.logged_raise_on, str(tmp_path), bad=5)
    results, given_up, relay, _ = run(fn, range(30), max_tries=3, dead=True, batch=8)
    assert results == [x for x in range(30) if x != 5]
    assert [(d.item, d.tries, d.cause) for d in given_up] == [(5, 1, "ValueError: 5 is refused")]
    assert starts(tmp_path) == dict.fromkeys(range(30), 1)  # nothing ran twice
    assert (relay.failure, relay.retried, relay.dead_lettered) == (None, 0, 1)
