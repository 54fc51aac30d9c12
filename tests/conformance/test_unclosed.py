"""A sender handle only this process holds warns if it is garbage-collected unclosed.

Handles that other processes may hold too (pickled, or alive at a fork) never
warn: closing them is the business of whichever process ends up with them.
"""

from __future__ import annotations

import gc
import multiprocessing
import pickle
import warnings
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

import pytest

from channels import Sender

import children
from support import LOCAL_BACKENDS, PROCESS_BACKENDS, WAIT, join, open_for, start

UNCLOSED = "garbage-collected without being closed"


@contextmanager
def no_resource_warning() -> Generator[None]:
    """Fail if a ResourceWarning is issued inside the block (one from ``__del__`` included)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def drop(box: list[Any]) -> None:
    """Let go of what ``box`` holds and collect it now."""
    box.clear()
    gc.collect()


def test_a_dropped_unclosed_clone_warns_and_names_its_channel(backend: str) -> None:
    ch = open_for(backend)
    box = [ch.clone()]
    where = repr(ch)
    with pytest.warns(ResourceWarning, match=UNCLOSED) as record:
        drop(box)
    message = str(record[0].message)
    assert "will never see its end" in message
    assert where.split()[1] in message  # the channel, as its repr names it
    ch.close()


def test_a_dropped_unclosed_channel_warns_once(backend: str) -> None:
    ch = open_for(backend)
    ch.send(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del ch
        gc.collect()
    found = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert len(found) == 1
    assert UNCLOSED in found[0]


def test_closed_handles_do_not_warn(backend: str) -> None:
    with no_resource_warning():
        ch = open_for(backend)
        tx = ch.clone()
        tx.close()
        with ch.clone() as other:
            other.send(1)
        ch.close()
        assert ch.recv(timeout=WAIT) == 1
        del tx, other, ch


# A local channel pickles only for a child that is starting (the next test).
@pytest.mark.parametrize("backend", [b for b in PROCESS_BACKENDS if b not in LOCAL_BACKENDS])
def test_a_pickled_handle_does_not_warn_here_or_in_its_copy(backend: str) -> None:
    ch = open_for(backend)
    with no_resource_warning():
        tx = ch.clone()
        copy: Sender[Any] = pickle.loads(pickle.dumps(tx))
        copy.send(1)
        del tx, copy
    assert ch.recv(timeout=WAIT) == 1
    ch.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_handle_given_to_a_child_does_not_warn_in_the_parent(backend: str, method: str) -> None:
    ch = open_for(backend, method)
    with no_resource_warning():
        tx = ch.clone()
        assert join(start(method, children.close_it, tx)) == [0]
        assert tx.closed
        del tx
        held = ch.clone()
        assert join(start(method, children.hold_and_die, held)) == [0]
        del held  # open, but the child had it too: whoever holds it last must close it
    ch.close()


@pytest.mark.processes  # the copy in a forked child is dead: the parent's warns (test_thread)
def test_a_handle_alive_at_a_fork_warns_in_neither_process(backend: str) -> None:
    ch = open_for(backend)
    box = [ch.clone()]

    def drop_the_copy() -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            drop(box)
        raise SystemExit(len([w for w in caught if issubclass(w.category, ResourceWarning)]))

    child = multiprocessing.get_context("fork").Process(target=drop_the_copy)
    child.start()
    assert join(child) == [0]
    with no_resource_warning():
        drop(box)
    with no_resource_warning():
        later = ch.clone()  # made after the fork: this process's alone again
        later.close()
    ch.close()
