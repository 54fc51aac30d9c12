"""Where the pool's work goes, and how long it may take: dispatch, timeouts, giving up."""

from __future__ import annotations

import math
import os
import signal
import time

import pytest

from channels import ChannelTimeout, ConfigError, SerializationError, TaskTimeout, WorkerCrashed
from channels._pool import Pool

import pool_funcs as f
from support import WAIT, pid_alive

pytestmark = pytest.mark.timeout(60)


def busy_worker(pool: Pool) -> int:
    """Start a task that hangs; return the pid of the worker running it."""
    before = set(pool.map(f.pid_of, range(2 * pool.workers), chunksize=1, timeout=WAIT))
    pool.apply_async(f.hang)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        free = set(pool.map(f.pid_of, range(8), chunksize=1, timeout=WAIT))
        hung = before - free
        if len(hung) == 1 and len(free) == pool.workers - 1:
            return hung.pop()
    raise AssertionError("no worker took the hanging task")


# -- dispatch ---------------------------------------------------------------------------


@pytest.mark.skipif(f.WRITE_SYSCALL is None, reason="the write system call's number is unknown")
def test_a_worker_stopped_in_the_middle_of_its_answer_stalls_no_other_task() -> None:
    # The dispatcher reads answers only as they come: it never waits on a half-written one.
    with Pool(2, context="fork") as pool:
        pool.map(f.square, range(4), chunksize=1, timeout=WAIT)  # both workers are up
        stopped = pool.map_async(f.stopped_mid_result, [64 << 20], task_timeout=5.0)
        time.sleep(0.5)  # it is stopped by now, part of its answer sent
        start = time.monotonic()
        hanging = pool.map_async(f.sleep_for, [30.0], task_timeout=0.5)
        with pytest.raises(TaskTimeout, match=r"task_timeout of 0\.5 s"):
            hanging.get(timeout=WAIT)
        assert time.monotonic() - start < 10
        assert pool.map(f.square, range(3), timeout=WAIT) == [0, 1, 4]
        with pytest.raises(TaskTimeout):  # its worker is killed, stopped as it is
            stopped.get(timeout=WAIT)


def test_no_chunk_waits_behind_a_hung_task() -> None:
    with Pool(2, context="fork") as pool:
        busy_worker(pool)
        start = time.monotonic()
        assert pool.map(f.square, range(20), chunksize=1, timeout=10) == [x * x for x in range(20)]
        assert list(pool.imap(f.square, range(20), chunksize=1, timeout=10))[-1] == 361
        assert time.monotonic() - start < 5
        pool.terminate()


def test_work_sent_to_a_worker_just_killed_goes_to_a_live_one() -> None:
    with Pool(2, context="fork") as pool:
        for _ in range(15):
            assert pool.map(f.square, range(4), chunksize=1, timeout=WAIT) == [0, 1, 4, 9]
            os.kill(pool._engine.pids()[0], signal.SIGKILL)
            # The dispatcher has not seen the death yet: nothing may fail for it.
            assert pool.map(f.square, range(20), chunksize=1, timeout=WAIT)[-1] == 361


# -- per-task timeouts ----------------------------------------------------------------------


def test_task_timeout_fails_the_task_and_replaces_its_worker(method: str) -> None:
    with Pool(2, context=method) as pool:
        pool.map(f.square, range(4), chunksize=1, timeout=WAIT)  # workers are up
        start = time.monotonic()
        with pytest.raises(TaskTimeout, match=r"sleep_for\) \(item 1\) ran longer") as info:
            pool.map(f.sleep_for, [0.0, 30.0, 0.0], chunksize=3, task_timeout=0.5, timeout=WAIT)
        assert time.monotonic() - start < 10
        assert "task_timeout of 0.5 s" in str(info.value)
        # The pool goes on, with as many workers as before.
        assert pool.map(f.square, range(10), timeout=WAIT) == [x * x for x in range(10)]
        assert len(pool._engine.pids()) == 2


def test_task_timeout_is_per_task_not_per_chunk() -> None:
    with Pool(1, context="fork") as pool:
        # One chunk of four tasks that together outlast the limit, each well within it.
        waits = [0.15] * 4
        assert pool.map(f.sleep_for, waits, chunksize=4, task_timeout=0.4, timeout=WAIT) == waits
        results = pool.imap(f.sleep_for, [0.0, 0.0, 30.0, 0.0], chunksize=4, task_timeout=0.3)
        assert [results.next(timeout=WAIT), results.next(timeout=WAIT)] == [0.0, 0.0]
        with pytest.raises(TaskTimeout, match="item 2"):
            results.next(timeout=WAIT)


def test_the_pools_task_timeout_applies_to_every_call() -> None:
    with Pool(1, context="fork", task_timeout=0.3) as pool:
        hanging = pool.apply_async(f.hang)
        with pytest.raises(TaskTimeout, match="task_timeout"):
            hanging.get(timeout=WAIT)
        with pytest.raises(TaskTimeout):
            pool.starmap_async(f.sleep_then, [(0.0, 1), (30.0, 2)], chunksize=1).get(WAIT)
        # A call may allow more than the pool does.
        assert pool.map(f.sleep_for, [0.5], task_timeout=5, timeout=WAIT) == [0.5]
        assert pool.apply(f.add, 1, 2) == 3


# -- giving up, closing -------------------------------------------------------------------------


def test_a_call_that_times_out_stops_its_tasks() -> None:
    with Pool(2, context="fork") as pool:
        pool.map(f.square, range(4), chunksize=1, timeout=WAIT)
        pids = set(pool._engine.pids())
        with pytest.raises(ChannelTimeout, match="within"):
            pool.map(f.hang, range(2), chunksize=1, timeout=0.3)
        # Both workers ran a task nobody waits for any more: they were replaced.
        deadline = time.monotonic() + WAIT
        while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not any(pid_alive(pid) for pid in pids)
        assert pool.map(f.square, range(10), timeout=WAIT)[-1] == 81


def test_close_and_join_return_once_awaited_tasks_end() -> None:
    pool = Pool(2, context="fork")
    with pytest.raises(ChannelTimeout):
        pool.map(f.hang, [0], timeout=0.2)
    slow = pool.apply_async(f.sleep_then, 0.5, value=7)
    pool.close()
    start = time.monotonic()
    pool.join(timeout=WAIT)
    assert time.monotonic() - start < 5
    assert slow.get(timeout=0) == 7


def test_join_waits_for_a_task_still_awaited() -> None:
    pool = Pool(1, context="fork")
    hanging = pool.apply_async(f.hang)
    pool.close()
    with pytest.raises(ChannelTimeout):
        pool.join(timeout=0.3)
    pool.terminate()
    pool.join(timeout=WAIT)
    with pytest.raises(Exception, match="terminated"):
        hanging.get(timeout=WAIT)


def test_a_crash_still_fails_a_task_the_worker_took() -> None:
    with Pool(1, context="fork", task_timeout=WAIT) as pool:
        with pytest.raises(WorkerCrashed):
            pool.apply(f.exit_on, 3)
        assert pool.apply(f.exit_on, 2) == 2


# -- the timeout rule, shared with the channels ---------------------------------------------

BAD_TIMEOUTS = [-1, -0.5, math.nan, True, "1"]


@pytest.mark.parametrize("bad", BAD_TIMEOUTS, ids=repr)
def test_bad_timeouts_are_config_errors(bad: object) -> None:
    with pytest.raises(ConfigError, match="timeout"):
        Pool(1, context="fork", task_timeout=bad)  # type: ignore[arg-type]
    with Pool(1, context="fork") as pool:
        with pytest.raises(ConfigError, match="timeout"):
            pool.map(f.square, range(3), timeout=bad)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="timeout"):
            pool.imap(f.square, range(3), timeout=bad)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="timeout"):
            pool.starmap(f.add, [(1, 2)], task_timeout=bad)  # type: ignore[arg-type]
        result = pool.apply_async(f.add, 1, 2)
        with pytest.raises(ConfigError, match="timeout"):
            result.get(timeout=bad)  # type: ignore[arg-type]
        assert result.get(timeout=WAIT) == 3
        results = pool.imap(f.square, range(3))
        with pytest.raises(ConfigError, match="timeout"):
            results.next(timeout=bad)  # type: ignore[arg-type]
        assert list(results) == [0, 1, 4]
        pool.close()
        with pytest.raises(ConfigError, match="timeout"):
            pool.join(timeout=bad)  # type: ignore[arg-type]


def test_timed_calls_keep_the_other_failure_modes() -> None:
    with Pool(2, context="fork") as pool:
        results = pool.imap(f.fail_on, range(6), chunksize=6, task_timeout=WAIT)
        assert [results.next(timeout=WAIT) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(ValueError, match="bad input 3"):
            results.next(timeout=WAIT)
        with pytest.raises(SerializationError, match="cannot be pickled"):
            pool.map(f.unpicklable_result, range(3), chunksize=3, task_timeout=WAIT)
        with pytest.raises(WorkerCrashed, match="item 3"):
            pool.map(f.exit_on, range(6), chunksize=6, task_timeout=WAIT, timeout=WAIT)
        assert pool.map(f.square, range(6), task_timeout=WAIT, timeout=WAIT)[-1] == 25
