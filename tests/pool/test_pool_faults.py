"""The pool's failure modes, under every start method: each one loud, prompt and contained."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

import channels
from channels import PoolBroken, PoolClosed, SerializationError, WorkerCrashed
from channels._pool import Pool
from channels._pool.remote_errors import RemoteTraceback

import pool_funcs as f
from support import METHODS, TESTS, WAIT, pid_alive

pytestmark = pytest.mark.timeout(60)


def warm_up(pool: Pool) -> set[int]:
    """Wait until every worker has run a task; return their pids."""
    deadline = time.monotonic() + WAIT
    seen: set[int] = set()
    while len(seen) < pool.workers and time.monotonic() < deadline:
        seen |= set(pool.map(f.pid_of, range(2 * pool.workers), chunksize=1, timeout=WAIT))
    assert len(seen) == pool.workers
    return seen


# -- exceptions in the function ------------------------------------------------------


def test_exception_keeps_its_type_and_the_worker_traceback(method: str) -> None:
    with Pool(2, context=method) as pool:
        with pytest.raises(ValueError, match="bad input 3") as info:
            pool.map(f.fail_on, range(10), timeout=WAIT)
        cause = info.value.__cause__
        assert isinstance(cause, RemoteTraceback)
        assert "in fail_on" in cause.text
        assert 'raise ValueError(f"bad input {x}")' in cause.text
        report = "".join(traceback.format_exception(info.value))
        assert "raised in a pool worker" in report

        with pytest.raises(f.CustomError) as custom:
            pool.apply(f.raise_custom, 42)
        assert (custom.value.code, custom.value.detail) == (42, "custom detail")

        with pytest.raises(SerializationError, match="UnpicklableError"):
            pool.apply(f.raise_unpicklable)

        # imap yields what comes before the failure, then raises it.
        results = pool.imap(f.fail_on, range(10), chunksize=2, timeout=WAIT)
        assert [next(results) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(ValueError, match="bad input 3"):
            next(results)
        with pytest.raises(StopIteration):
            next(results)

        # The pool is unharmed.
        assert pool.map(f.square, range(5), timeout=WAIT) == [0, 1, 4, 9, 16]


def test_input_iterable_that_raises() -> None:
    def numbers() -> Iterator[int]:
        yield from range(5)
        raise LookupError("input broke")

    with Pool(2, context="fork") as pool:
        results = pool.imap(f.square, numbers(), timeout=WAIT)
        assert [next(results) for _ in range(5)] == [0, 1, 4, 9, 16]
        with pytest.raises(LookupError, match="input broke"):
            next(results)
        with pytest.raises(LookupError, match="input broke"):
            pool.map(f.square, numbers(), timeout=WAIT)


# -- workers that die -----------------------------------------------------------------

EXITCODES = {"exit": 7, "kill": -signal.SIGKILL, "segfault": -signal.SIGSEGV}


@pytest.mark.parametrize("how", sorted(EXITCODES))
def test_dead_worker_fails_only_its_task_and_is_replaced(method: str, how: str) -> None:
    with Pool(2, context=method) as pool:
        before = warm_up(pool)
        start = time.monotonic()
        results = [pool.apply_async(f.die_on, i, how) for i in range(8)]
        with pytest.raises(WorkerCrashed) as info:
            results[3].get(timeout=WAIT)
        assert time.monotonic() - start < 2.0
        crash = info.value
        assert crash.pid in before
        assert crash.exitcode == EXITCODES[how]
        assert f"pool worker {crash.pid}" in str(crash)
        # Every other task ran, including those queued behind the dead one.
        assert [r.get(timeout=WAIT) for i, r in enumerate(results) if i != 3] == [
            0,
            1,
            2,
            4,
            5,
            6,
            7,
        ]
        assert pool.map(f.square, range(10), timeout=WAIT) == [x * x for x in range(10)]
        after = set(pool._engine.pids())
        assert crash.pid not in after
        assert len(after) == 2


def test_crash_inside_map_and_imap(method: str) -> None:
    with Pool(2, context=method) as pool:
        crashing = pool.starmap_async(f.die_on, [(i, "exit") for i in range(10)])
        with pytest.raises(WorkerCrashed):
            crashing.get(timeout=WAIT)
        results = pool.imap(f.exit_on, range(10), chunksize=1, timeout=WAIT)
        assert [next(results) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(WorkerCrashed, match="exited with code 7"):
            next(results)
        assert pool.starmap(f.die_on, [(1, "kill"), (2, "kill")], timeout=WAIT) == [1, 2]


def test_worker_killed_from_outside() -> None:
    with Pool(2, context="fork") as pool:
        warm_up(pool)
        hanging = [pool.apply_async(f.hang) for _ in range(2)]
        time.sleep(0.2)
        for pid in pool._engine.pids():
            os.kill(pid, signal.SIGKILL)
        for result in hanging:
            with pytest.raises(WorkerCrashed, match="killed by SIGKILL"):
                result.get(timeout=WAIT)
        assert pool.apply(f.add, 1, 2) == 3


def test_a_worker_forked_from_a_parent_that_catches_sigterm_still_dies_of_it() -> None:
    caught: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: caught.append(signum))
    try:
        with Pool(1, context="fork") as pool:
            warm_up(pool)
            hanging = pool.apply_async(f.hang)
            time.sleep(0.2)
            (pid,) = pool._engine.pids()
            os.kill(pid, signal.SIGTERM)
            with pytest.raises(WorkerCrashed, match="killed by SIGTERM"):
                hanging.get(timeout=WAIT)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert caught == []


# -- serialization ----------------------------------------------------------------------


def test_unpicklable_argument_result_or_function(method: str) -> None:
    lock = threading.Lock()
    with Pool(2, context=method) as pool:
        with pytest.raises(SerializationError, match="cannot pickle the input"):
            pool.apply(f.identity, lock)
        with pytest.raises(SerializationError, match="item 1"):
            pool.map(f.identity, [1, lock, 3], chunksize=3, timeout=WAIT)
        with pytest.raises(SerializationError, match="cannot be pickled"):
            pool.apply(f.unpicklable_result)
        with pytest.raises(SerializationError, match="cannot be pickled"):
            pool.map(f.return_lambda, range(4), timeout=WAIT)
        with pytest.raises(SerializationError, match="module level"):
            pool.map(lambda x: x, range(4))
        # imap yields the results before the bad item, from a list or any iterable.
        for inputs in ([1, 2, lock, 4], iter([1, 2, lock, 4])):
            results = pool.imap(f.identity, inputs, chunksize=4, timeout=WAIT)
            assert [next(results), next(results)] == [1, 2]
            with pytest.raises(SerializationError, match="item 2"):
                next(results)
        assert pool.map(f.square, range(5), timeout=WAIT) == [0, 1, 4, 9, 16]


# -- initializers -----------------------------------------------------------------------


def test_initializer_that_raises_fails_fast(method: str) -> None:
    with Pool(2, context=method, initializer=f.init_fail) as pool:
        start = time.monotonic()
        with pytest.raises(PoolBroken, match="initializer") as info:
            pool.map(f.square, range(4), timeout=WAIT)
        assert time.monotonic() - start < 10
        original = info.value.__cause__
        assert isinstance(original, RuntimeError)
        assert "initializer refuses" in str(original)
        assert isinstance(original.__cause__, RemoteTraceback)
        with pytest.raises(PoolBroken, match="initializer"):
            pool.apply_async(f.square, 2)
        time.sleep(0.2)
        assert pool._engine.started <= 2  # no respawning


def test_workers_that_keep_dying_at_start_break_the_pool(method: str) -> None:
    # The first chunk goes to a worker still starting: it never reads it, and the
    # chunk goes on to the next worker, until the pool gives up on starting them.
    with Pool(1, context=method, initializer=os._exit, initargs=(3,)) as pool:
        with pytest.raises(PoolBroken, match="3 workers in a row died while starting"):
            pool.apply(f.add, 1, 2)
        assert pool._engine.started == 3


def test_a_chunk_on_a_worker_that_died_starting_goes_to_another(tmp_path: Path) -> None:
    # The first worker to run the initializer is killed by it, holding a chunk it never read.
    init = (str(tmp_path), 3, 3)
    with Pool(2, context="fork", initializer=f.killed_once_on, initargs=init) as pool:
        assert pool.map(f.square, range(4), chunksize=1, timeout=WAIT) == [0, 1, 4, 9]
        assert (tmp_path / "3").exists()
        # The other worker may finish the map before the dead one's replacement is up.
        deadline = time.monotonic() + WAIT
        while pool._engine.started < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool._engine.started == 3


def test_a_slow_start_does_not_count_against_a_task_timeout() -> None:
    # The first chunks go to workers still in their initializer: a task's clock starts
    # only once its worker is up.
    init = (1.0,)
    with Pool(2, context="fork", initializer=f.sleep_for, initargs=init, task_timeout=0.4) as pool:
        assert pool.map(f.square, range(4), chunksize=1, timeout=WAIT) == [0, 1, 4, 9]


def test_unpicklable_initializer_is_refused_at_once() -> None:
    with pytest.raises(SerializationError, match="initializer"):
        Pool(1, context="spawn", initializer=lambda: None)


# -- leaving, interrupting ----------------------------------------------------------------


def test_exception_in_the_block_leaves_no_worker(method: str) -> None:
    pids: list[int] = []

    def leave_by_exception() -> None:
        with Pool(2, context=method) as pool:
            pids.extend(warm_up(pool))
            pool.apply_async(f.hang)
            pool.apply_async(f.hang)
            raise KeyError("leave")

    with pytest.raises(KeyError):
        leave_by_exception()
    assert len(pids) == 2
    assert not any(pid_alive(pid) for pid in pids)


_INTERRUPTED = """
import multiprocessing, sys
from channels._pool import Pool
import pool_funcs as f

def main():
    with Pool(2, context=sys.argv[1]) as pool:
        pool.map(f.sleep_then, [0.1, 0.1], chunksize=1, timeout=20)
        print("pids", *pool._engine.pids(), flush=True)
        pool.map(f.hang, range(4), chunksize=1, timeout=60)

if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("children", len(multiprocessing.active_children()), flush=True)
        raise
"""


@pytest.mark.parametrize(
    ("start_method", "target"),
    [(m, "group") for m in METHODS] + [("fork", "parent")],
)
def test_ctrl_c_stops_the_workers(start_method: str, target: str) -> None:
    tests = TESTS
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tests.parent / "src"), str(tests)]),
    }
    child = subprocess.Popen(
        [sys.executable, "-c", _INTERRUPTED, start_method],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, as a terminal would have
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith("pids"), line + child.stderr.read()  # type: ignore[union-attr]
        pids = [int(p) for p in line.split()[1:]]
        time.sleep(0.3)  # let the workers start on the hanging tasks
        if target == "group":
            os.killpg(child.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        else:
            os.kill(child.pid, signal.SIGINT)
        out, err = child.communicate(timeout=15)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
    assert child.returncode == -signal.SIGINT, err
    assert "children 0" in out
    assert err.count("Traceback (most recent call last)") == 1, err
    assert "KeyboardInterrupt" in err
    deadline = time.monotonic() + 5
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(pid_alive(pid) for pid in pids)


_LEFT_OPEN = """
import sys
from channels._pool import Pool
import pool_funcs as f

if __name__ == "__main__":
    pool = Pool(2, context=sys.argv[1])
    pool.map(f.square, range(4), chunksize=1, timeout=20)
    pool.apply_async(f.hang)
    print("pids", *pool._engine.pids(), flush=True)
"""


def test_a_pool_left_open_at_exit_neither_hangs_nor_leaks() -> None:
    tests = TESTS
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent / "src"), str(tests)])}
    done = subprocess.run(
        [sys.executable, "-c", _LEFT_OPEN, "fork"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    pids = [int(p) for p in done.stdout.split()[1:]]
    assert len(pids) == 2
    deadline = time.monotonic() + 5
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(pid_alive(pid) for pid in pids)


_UNGUARDED = """
import sys
from channels import Pool

pool = Pool(2, context=sys.argv[1])
print(pool.map(abs, [-1, -2], timeout=20))
"""


@pytest.mark.parametrize("start", ["spawn", "forkserver"])
def test_a_script_without_the_main_guard_gets_one_clear_error(tmp_path: Path, start: str) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(_UNGUARDED)
    tests = TESTS
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent / "src"), str(tests)])}
    done = subprocess.run(
        [sys.executable, str(script), start],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert done.stderr.count("Traceback") == 1, done.stderr
    # The workers' lines may come before or after the parent's error.
    errors = [line for line in lines if line.startswith("channels._errors.PoolBroken")]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("channels._errors.PoolBroken: the pool is broken")
    assert "unguarded.py starts a pool when it is imported" in errors[0]
    assert 'if __name__ == "__main__":' in errors[0]
    # The error, and one line from each worker that exited at start.
    assert len(lines) <= 25, done.stderr
    assert "RuntimeError" not in done.stderr


# -- one bad task never breaks the pool ----------------------------------------------------


def test_an_exception_of_a_frozen_dataclass_comes_back() -> None:
    with Pool(2, context="fork") as pool:
        with pytest.raises(f.FrozenError) as info:
            pool.apply(f.raise_frozen)
        assert isinstance(info.value.__cause__, RemoteTraceback)
        with pytest.raises(f.FrozenError):
            pool.map(f.raise_frozen, range(3), timeout=WAIT)
        assert pool.map(f.square, range(5), timeout=WAIT) == [0, 1, 4, 9, 16]


def test_system_exit_while_pickling_or_unpickling_fails_one_task() -> None:
    with Pool(2, context="fork") as pool:
        with pytest.raises(SerializationError, match="cannot pickle the input"):
            pool.apply(f.identity, f.ExitOnPickle())
        with pytest.raises(SerializationError, match="item 1"):
            pool.map(f.identity, [1, f.ExitOnPickle(), 3], chunksize=3, timeout=WAIT)
        with pytest.raises(SerializationError, match="cannot unpickle the results"):
            pool.apply(f.exit_on_unpickle)
        with pytest.raises(SerializationError):
            pool.map(f.exit_on_unpickle, range(4), timeout=WAIT)
        assert pool.map(f.square, range(5), timeout=WAIT) == [0, 1, 4, 9, 16]
        assert pool.apply(f.add, 1, 2) == 3


def test_a_result_that_cannot_be_unpickled_costs_no_worker() -> None:
    # Its results travel apart from the answer that ends the chunk: the answers stay in step.
    with Pool(1, context="fork") as pool:
        pid = pool.apply(f.pid_of)
        with pytest.raises(SerializationError, match="cannot unpickle the results"):
            pool.apply(f.exit_on_unpickle)
        assert pool.apply(f.pid_of) == pid
        assert pool.map(f.square, range(5), timeout=WAIT) == [0, 1, 4, 9, 16]


def test_a_fork_pool_inside_a_pool_worker(method: str) -> None:
    with Pool(1, context=method) as pool:
        assert pool.apply_async(f.inner_pool_squares, 6).get(timeout=WAIT) == [
            x * x for x in range(6)
        ]


def test_initargs_may_hold_a_local_channel(method: str) -> None:
    ch = channels.open_channel[int]("queue", context=method)
    with ch, Pool(2, context=method, initializer=f.init_send, initargs=(ch.sender,)) as pool:
        pids = set(pool.map(f.pid_of, range(8), chunksize=1, timeout=WAIT))
        started = {ch.recv(timeout=WAIT), ch.recv(timeout=WAIT)}
        assert pids <= started == set(pool._engine.pids())


def test_a_closed_pool_cannot_be_entered() -> None:
    pool = Pool(1, context="fork")
    pool.close()
    with pytest.raises(PoolClosed, match="closed"), pool:
        pass
    pool.join(timeout=WAIT)
