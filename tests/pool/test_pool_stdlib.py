"""Code written for ``multiprocessing.Pool`` or ``ProcessPoolExecutor`` runs on ``channels``."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from channels import AsyncResult, ConfigError, Pool, PoolClosed, PoolExecutor

import pool_funcs as f
from support import WAIT, pid_alive

pytestmark = pytest.mark.timeout(60)


class Collected:
    """What callbacks received, and a way to wait for it."""

    def __init__(self) -> None:
        self.values: list[object] = []
        self._cond = threading.Condition()

    def add(self, value: object) -> None:
        with self._cond:
            self.values.append(value)
            self._cond.notify_all()

    def wait_for(self, count: int) -> list[object]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.values) >= count, WAIT)
            return list(self.values)


# -- multiprocessing.Pool's forms ---------------------------------------------------------


def test_processes_is_the_stdlib_name_for_workers() -> None:
    with Pool(processes=2, context="fork") as pool:
        assert pool.workers == 2
        assert pool.map(f.square, range(4), timeout=WAIT) == [0, 1, 4, 9]
    with pytest.raises(ConfigError, match="processes"):
        Pool(2, processes=2)


def test_apply_with_args_and_kwds() -> None:
    with Pool(2, context="fork") as pool:
        assert pool.apply(f.add, args=(1, 2)) == 3
        assert pool.apply(f.add, args=(1,), kwds={"b": 5}) == 6
        assert pool.apply(f.sleep_then, kwds={"seconds": 0, "value": 4}) == 4
        assert pool.apply_async(f.add, args=(3, 4)).get(timeout=WAIT) == 7
        assert pool.apply_async(f.add, args=(3,), kwds={"b": 5}).get(timeout=WAIT) == 8
        # Without a stdlib keyword, a tuple is the one argument of the typed form.
        assert pool.apply(f.identity, (1, 2)) == (1, 2)


def test_callbacks_get_the_result_or_the_error_and_never_reach_the_function() -> None:
    done, failed = Collected(), Collected()
    with Pool(2, context="fork") as pool:
        pool.apply_async(f.add, (1, 2), callback=done.add)
        pool.apply_async(f.fail_on, (3,), callback=done.add, error_callback=failed.add)
        pool.apply_async(f.add, args=(5, 5), error_callback=failed.add, callback=done.add)
        pool.map_async(f.square, range(4), callback=done.add)
        pool.starmap_async(f.add, [(1, 1)], callback=done.add)
        pool.map_async(f.fail_on, range(5), error_callback=failed.add)
        assert sorted(map(repr, done.wait_for(4))) == ["10", "3", "[0, 1, 4, 9]", "[2]"]
        errors = failed.wait_for(2)
        assert all(isinstance(e, ValueError) and "bad input 3" in str(e) for e in errors)


def test_a_result_is_ready_only_once_its_callback_has_run() -> None:
    """As in the stdlib: what the callback did is there to see once ``get()`` returns."""
    seen: list[object] = []

    def slow(value: object) -> None:
        time.sleep(0.3)
        seen.append(value)

    with Pool(2, context="fork") as pool:
        one = pool.apply_async(f.add, (1, 2), callback=slow)
        assert one.get(timeout=WAIT) == 3
        assert seen == [3]
        assert one.ready()
        assert one.successful()
        many = pool.map_async(f.fail_on, [3], error_callback=slow)
        assert many.wait(timeout=WAIT)
        assert len(seen) == 2
        assert isinstance(seen[1], ValueError)


def test_a_callback_may_wait_for_its_own_result() -> None:
    got: list[object] = []
    with Pool(1, context="fork") as pool:
        holder: list[AsyncResult[int]] = []

        def callback(_: object) -> None:
            got.append(holder[0].get(timeout=WAIT))

        holder.append(pool.apply_async(f.add, (2, 2), callback=callback))
        pool.close()
        pool.join(timeout=WAIT)
    assert got == [4]


def test_join_waits_for_the_callbacks() -> None:
    results: list[int] = []
    pool = Pool(2, context="fork")
    for x in range(10):
        pool.apply_async(f.square, (x,), callback=results.append)
    pool.close()
    pool.join(timeout=WAIT)
    assert sorted(results) == [x * x for x in range(10)]


def test_a_callback_that_raises_is_logged_and_the_pool_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(_: object) -> None:
        raise RuntimeError("callback broke")

    done = Collected()
    with caplog.at_level(logging.ERROR, logger="channels"), Pool(1, context="fork") as pool:
        pool.apply_async(f.add, (1, 2), callback=broken)
        pool.apply_async(f.add, (2, 2), callback=done.add)
        assert done.wait_for(1) == [4]
        assert pool.apply(f.add, 3, 3) == 6
    assert "callback broke" in caplog.text


BAD_FORMS: list[tuple[tuple[object, ...], dict[str, object], str]] = [
    (((1,), {}, None), {"callback": print}, "at most"),
    (((1,),), {"args": (2,)}, "both"),
    ((), {"args": (1, 2), "b": 3}, "kwds="),
    ((), {"args": 1}, "tuple"),
    ((), {"args": (1,), "kwds": [1]}, "mapping"),
    (((1, 2),), {"callback": 3}, "callable"),
]


@pytest.mark.parametrize(("positional", "named", "match"), BAD_FORMS)
def test_bad_stdlib_forms_are_config_errors(
    positional: tuple[object, ...], named: dict[str, object], match: str
) -> None:
    with Pool(1, context="fork") as pool:
        untyped: Callable[..., object] = pool.apply_async
        with pytest.raises(ConfigError, match=match):
            untyped(f.add, *positional, **named)


# -- the Executor interface ------------------------------------------------------------------


def test_submit_and_shutdown_on_the_pool() -> None:
    pool = Pool(2, context="fork")
    futures = [pool.submit(f.add, x, b=1) for x in range(5)]
    failing = pool.submit(f.fail_on, 3)
    done = concurrent.futures.as_completed([*futures, failing], timeout=WAIT)
    assert len(list(done)) == 6
    assert [fut.result() for fut in futures] == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="bad input 3"):
        failing.result()
    assert not futures[0].cancel()
    pool.shutdown()
    with pytest.raises(PoolClosed):
        pool.submit(f.add, 1, 2)


def test_shutdown_can_cancel_what_has_not_started() -> None:
    pool = Pool(1, context="fork")
    running = pool.submit(f.sleep_then, 0.5, 1)
    time.sleep(0.2)
    waiting = pool.submit(f.add, 1, 2)
    pool.shutdown(wait=True, cancel_futures=True)
    assert running.result(timeout=0) == 1
    with pytest.raises(PoolClosed, match="shut down"):
        waiting.result(timeout=0)


def test_executor_ports_process_pool_executor_code(method: str) -> None:
    with PoolExecutor(max_workers=2, mp_context=method) as executor:
        assert isinstance(executor, concurrent.futures.Executor)
        assert executor.submit(f.add, 1, 2).result(timeout=WAIT) == 3
        assert list(executor.map(f.square, range(5), timeout=WAIT)) == [0, 1, 4, 9, 16]
        assert list(executor.map(f.add, range(3), range(10, 20), chunksize=2)) == [10, 12, 14]
        with pytest.raises(ValueError, match="bad input 3"):
            list(executor.map(f.fail_on, range(5)))
        assert executor.pool.map(f.double, [1, 2], timeout=WAIT) == [2, 4]
    assert "closed" in repr(executor)


def test_executor_map_timeout_counts_from_the_call() -> None:
    with PoolExecutor(1, "fork", f.init_set, ("x",)) as executor:
        assert executor.submit(f.get_initialized).result(timeout=WAIT) == ["x"]
        results = executor.map(f.sleep_for, [0.3, 0.3, 0.3], timeout=0.5)
        assert next(results) == 0.3
        with pytest.raises(TimeoutError):
            list(results)


# -- Python 3.14's additions, on every supported Python -----------------------------------------


def test_executor_map_with_a_buffersize_reads_no_further_ahead() -> None:
    read: list[int] = []

    def inputs() -> Iterator[int]:
        for x in range(200):
            read.append(x)
            yield x

    with PoolExecutor(2, "fork") as executor:
        results = executor.map(f.square, inputs(), timeout=WAIT, buffersize=5)
        for taken, value in enumerate(results, 1):
            assert value == (taken - 1) ** 2
            assert len(read) <= taken + 5  # never more than buffersize tasks ahead
        assert len(read) == 200
        # A chunksize larger than the buffer is cut to it.
        assert list(executor.map(f.square, range(20), chunksize=50, buffersize=3)) == [
            x * x for x in range(20)
        ]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_executor_map_refuses_a_bad_buffersize(bad: object) -> None:
    with PoolExecutor(1, "fork") as executor, pytest.raises(ConfigError, match="buffersize"):
        executor.map(f.square, range(3), buffersize=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("how", ["terminate_workers", "kill_workers"])
def test_executor_stops_its_workers_now(how: str, tmp_path: Path) -> None:
    executor = PoolExecutor(1, "fork")
    hanging = executor.submit(f.note_sigterm_then_hang, str(tmp_path))
    deadline = time.monotonic() + WAIT
    while not executor.pool._engine.pids() or not hanging.running():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)  # the worker runs the task, its SIGTERM handler in place
    pids = executor.pool._engine.pids()
    getattr(executor, how)()
    with pytest.raises(PoolClosed, match="terminated"):
        hanging.result(timeout=WAIT)
    assert not any(pid_alive(pid) for pid in pids)
    # terminate_workers asks first (SIGTERM, which this task notes); kill_workers does not.
    assert (tmp_path / "sigterm").exists() == (how == "terminate_workers")
    with pytest.raises(PoolClosed):
        executor.submit(f.add, 1, 2)
