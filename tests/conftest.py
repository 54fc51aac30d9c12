"""Fixtures shared by the suite: backends, start methods, and leak checks."""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from multiprocessing import forkserver, resource_tracker
from typing import TYPE_CHECKING

import pytest

import channels

from leaks import isolate_semaphore_names, own_semaphores
from support import BACKENDS, METHODS, THREAD, live_descendants

if TYPE_CHECKING:  # the redis helpers need redis-py: imported by the fixtures that use them
    from fault_proxy import FaultProxy
    from redis_server import RedisServer


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every backend."""
    return str(request.param)


@pytest.fixture(params=[*METHODS, THREAD])
def method(request: pytest.FixtureRequest) -> str:
    """Every start method; ``THREAD`` (workers are threads) for the thread backend only."""
    return str(request.param)


_NEEDS = {
    "processes": "needs several processes: a thread channel and its handles stay in one",
    "serializes": "a thread channel passes items by reference and serializes nothing",
}


def pytest_configure(config: pytest.Config) -> None:
    # Started in the background by a shell without job control, pytest inherits SIGINT
    # ignored, and so would every process the tests start: Ctrl-C could not be tested.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Pair the thread backend with thread workers only, and process backends with processes;
    skip on the thread backend what only a process backend can do (marks ``processes``,
    ``serializes``)."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        threads = params.get("backend") == "thread"
        if "method" in params and (params["method"] == THREAD) != threads:
            dropped.append(item)
            continue
        kept.append(item)
        if threads:
            for mark, why in _NEEDS.items():
                if item.get_closest_marker(mark):
                    item.add_marker(pytest.mark.skip(reason=why))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


@pytest.fixture(scope="session", autouse=True)
def _warm_up() -> None:
    """Start the helpers multiprocessing keeps for the whole run, so leak checks see only tests.

    Semaphores made from here on carry this run's name prefix, so that the leak check sees
    only its own processes' semaphores, never another program's.
    """
    isolate_semaphore_names()
    resource_tracker.ensure_running()
    forkserver.ensure_running()
    ch = channels.open_channel[int]("queue")
    ch.close()
    del ch
    gc.collect()


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail a test that leaves a process, a file descriptor or a named semaphore behind."""
    gc.collect()
    fds, sems = _fds(), own_semaphores()
    yield
    deadline = time.monotonic() + 5
    while True:
        gc.collect()  # a channel's private manager server stops when the channel is collected
        leftover = multiprocessing.active_children()
        strays = live_descendants()  # grandchildren too, e.g. workers forked by the forkserver
        new_fds, new_sems = _fds() - fds, own_semaphores() - sems
        if not (leftover or strays or new_fds or new_sems) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for child in leftover:
        child.kill()
        child.join(5)
    assert not leftover, f"child processes left running: {leftover}"
    assert not strays, f"descendant processes left running: {strays}"
    assert not new_fds, f"file descriptors left open: {sorted(new_fds)}"
    assert not new_sems, f"named semaphores left behind: {sorted(new_sems)}"


@pytest.fixture
def make_server() -> Iterator[Callable[..., RedisServer]]:
    """Start private redis-servers (``RedisServer`` options); each is removed at teardown."""
    from redis_server import RedisServer  # needs redis-py: only when a test asks

    made: list[RedisServer] = []

    def make(**options: object) -> RedisServer:
        server = RedisServer(**options)  # type: ignore[arg-type]
        made.append(server)
        return server.start()

    yield make
    for server in made:
        server.remove()


@pytest.fixture
def make_proxy() -> Iterator[Callable[[RedisServer], FaultProxy]]:
    """Start fault proxies in front of redis-servers; each is stopped at teardown."""
    from fault_proxy import FaultProxy

    made: list[FaultProxy] = []

    def make(server: RedisServer) -> FaultProxy:
        proxy = FaultProxy(("127.0.0.1", server.port)).start()
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.stop()
