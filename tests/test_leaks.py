"""The leak check sees the semaphores this run's processes leave, and no other program's."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection

import pytest

from leaks import SHM, own_semaphores
from support import METHODS, WAIT, join, start


def leak_a_semaphore(out: Connection) -> None:
    """Make a named semaphore and die without the finalizer that would remove it."""
    lock = multiprocessing.get_context("spawn").Lock()  # a name that outlives its creator
    out.send(lock._semlock.name)  # type: ignore[attr-defined]
    out.close()
    os._exit(0)


def remove(name: str, *, tracked: bool) -> None:
    os.unlink(shm_file(name))  # what sem_unlink does on Linux
    if tracked:
        resource_tracker.unregister(name, "semaphore")


def shm_file(name: str) -> str:
    return os.path.join(SHM, "sem." + name.lstrip("/"))


@pytest.mark.parametrize("method", METHODS)
def test_a_semaphore_left_by_the_tests_own_child_is_seen(method: str) -> None:
    before = own_semaphores()
    reader, writer = multiprocessing.Pipe(duplex=False)
    child = start(method, leak_a_semaphore, writer)
    writer.close()
    with reader:
        assert reader.poll(WAIT)
        name: str = reader.recv()
    assert join(child) == [0]
    try:
        assert {os.path.join(SHM, n) for n in own_semaphores() - before} == {shm_file(name)}
    finally:
        remove(name, tracked=True)
    assert own_semaphores() == before


UNRELATED = """
import _multiprocessing, secrets
name = "/mp-" + secrets.token_hex(4)  # named as any other multiprocessing program names them
_multiprocessing.SemLock(1, 1, 1, name, False)
print(name)
"""


def test_a_semaphore_left_by_another_program_is_ignored() -> None:
    before = own_semaphores()
    done = subprocess.run(
        [sys.executable, "-c", UNRELATED], capture_output=True, text=True, timeout=WAIT, check=True
    )
    name = done.stdout.strip()
    try:
        assert os.path.exists(shm_file(name))
        assert own_semaphores() == before
    finally:
        remove(name, tracked=False)
