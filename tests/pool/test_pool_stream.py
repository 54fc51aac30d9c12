"""``Pool.stream``: workers that drain one channel into another, on every backend."""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any

import pytest

import channels
from channels import EndOfChannel, PoolClosed, WorkerCrashed
from channels._pool import Pool
from channels._pool.remote_errors import RemoteTraceback

import pool_funcs as f
from support import METHODS, WAIT

if not hasattr(channels, "open_channel"):
    pytest.skip(
        "the channel core (channels.open_channel) is not there yet", allow_module_level=True
    )

BACKENDS = [b for b in ("pipe", "queue", "simplequeue", "manager") if b in channels.backends()]

pytestmark = pytest.mark.timeout(60)


def open_channel(backend: str, method: str) -> channels.Channel[Any]:
    return channels.open_channel[Any](backend, context=method)


def collect(receiver: channels.Receiver[Any]) -> list[Any]:
    """Every item until the end of the channel, each wait bounded."""
    items: list[Any] = []
    while True:
        try:
            items.append(receiver.recv(timeout=WAIT))
        except EndOfChannel:
            return items


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", METHODS)
def test_stream_drains_the_inbox_into_the_outbox(backend: str, method: str) -> None:
    jobs = open_channel(backend, method)  # before the pool
    with Pool(2, context=method) as pool:
        results = open_channel(backend, method)  # and after it
        done = pool.stream(f.square, jobs.receiver, results.sender)
        assert isinstance(done, Future)
        for i in range(40):
            jobs.send(i, timeout=WAIT)
        jobs.close()
        assert sorted(collect(results.receiver)) == [i * i for i in range(40)]
        assert done.result(timeout=WAIT) is None
        assert results.sender.closed
        results.close()
    jobs.receiver.close()
    results.receiver.close()


def test_stream_reports_the_function_exception() -> None:
    jobs, results = open_channel("queue", "fork"), open_channel("queue", "fork")
    with Pool(2, context="fork") as pool:
        done = pool.stream(f.fail_on, jobs.receiver, results.sender)
        for i in range(10):
            jobs.send(i, timeout=WAIT)
        # The inbox is never closed: the failure must still end the stream.
        with pytest.raises(ValueError, match="bad input 3") as info:
            done.result(timeout=WAIT)
        assert isinstance(info.value.__cause__, RemoteTraceback)
        collect(results.receiver)  # ends, with the items sent before the failure
        jobs.close()
    jobs.receiver.close()


@pytest.mark.parametrize("method", METHODS)
def test_stream_reports_a_dead_worker(method: str) -> None:
    jobs, results = open_channel("queue", method), open_channel("queue", method)
    with Pool(2, context=method) as pool:
        done = pool.stream(f.kill_self, jobs.receiver, results.sender)
        for i in range(10):
            jobs.send(i, timeout=WAIT)
        with pytest.raises(WorkerCrashed, match="killed by SIGKILL") as info:
            done.result(timeout=WAIT)
        assert info.value.exitcode == -9
        # The dead worker's outbox handle was closed for it: readers are not left waiting.
        assert 3 not in collect(results.receiver)
        jobs.close()
    jobs.receiver.close()


def test_stream_with_a_lambda_under_fork() -> None:
    jobs, results = open_channel("pipe", "fork"), open_channel("pipe", "fork")
    with Pool(1, context="fork") as pool:
        done = pool.stream(lambda x: x + 1, jobs.receiver, results.sender)
        for i in range(3):
            jobs.send(i, timeout=WAIT)
        jobs.close()
        assert collect(results.receiver) == [1, 2, 3]
        done.result(timeout=WAIT)
    jobs.receiver.close()


def test_stream_on_a_closed_pool() -> None:
    jobs, results = open_channel("queue", "fork"), open_channel("queue", "fork")
    pool = Pool(1, context="fork")
    pool.close()
    with pytest.raises(PoolClosed):
        pool.stream(f.square, jobs.receiver, results.sender)
    pool.join(timeout=WAIT)
    for channel in (jobs, results):
        channel.close()
        channel.receiver.close()


def test_leaving_the_pool_by_an_exception_stops_a_stream() -> None:
    jobs, results = open_channel("queue", "fork"), open_channel("queue", "fork")
    done: Future[None] | None = None

    def leave_by_exception() -> None:
        nonlocal done
        with Pool(2, context="fork") as pool:
            done = pool.stream(f.hang, jobs.receiver, results.sender)
            jobs.send(1, timeout=WAIT)
            time.sleep(0.2)
            raise KeyError("leave")

    start = time.monotonic()
    with pytest.raises(KeyError):
        leave_by_exception()
    assert time.monotonic() - start < 10
    assert done is not None
    with pytest.raises(PoolClosed, match="terminated"):
        done.result(timeout=WAIT)
    jobs.close()
    for channel in (jobs, results):
        channel.receiver.close()
