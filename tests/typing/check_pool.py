"""What type checkers see of each ``Pool`` call.

mypy and pyright check this file (strict); pytest never runs it. The misuses
that must be rejected are in ``tests/test_typing.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Executor, Future
from typing import assert_type

from channels import AsyncResult, Pool, PoolExecutor, open_channel
from channels._pool.results import ResultIterator


def square(x: int) -> int:
    return x * x


def add(a: int, b: int) -> int:
    return a + b


def label(n: int, *, prefix: str = "#") -> str:
    return f"{prefix}{n}"


def describe(name: str, size: int, ratio: float) -> tuple[str, float]:
    return name, size * ratio


def setup(name: str, level: int) -> None: ...


def pool_calls() -> None:
    assert_type(Pool(), Pool)
    assert_type(Pool(4, context="spawn", max_tasks_per_child=10), Pool)
    assert_type(Pool(2, initializer=setup, initargs=("worker", 3)), Pool)
    with Pool(workers=2) as pool:
        assert_type(pool, Pool)
        assert_type(pool.workers, int)

        assert_type(pool.map(square, range(10)), list[int])
        assert_type(pool.map(label, [1, 2], chunksize=1, timeout=5.0), list[str])
        assert_type(pool.map(square, range(3), progress=True), list[int])
        assert_type(pool.map(square, range(3), on_progress=lambda done, total: None), list[int])
        assert_type(pool.starmap(add, zip(range(6), range(6, 12), strict=True)), list[int])
        assert_type(pool.starmap(describe, [("a", 1, 0.5)]), list[tuple[str, float]])
        assert_type(pool.map_async(square, [1, 2]), AsyncResult[list[int]])
        assert_type(pool.map_async(square, [1, 2]).get(timeout=1.0), list[int])
        assert_type(pool.starmap_async(add, [(1, 2)]), AsyncResult[list[int]])

        assert_type(pool.imap(square, range(10)), ResultIterator[int])
        assert_type(pool.imap_unordered(label, iter([1, 2])), ResultIterator[str])
        for r in pool.imap(square, range(10)):
            assert_type(r, int)
        for s in pool.imap_unordered(label, range(10), chunksize=4):
            assert_type(s, str)
        assert_type(pool.imap(square, [1]).next(timeout=1.0), int)

        assert_type(pool.apply(add, 1, 2), int)
        assert_type(pool.apply(label, 3, prefix="n"), str)
        future = pool.apply_async(add, 1, 2)
        assert_type(future, AsyncResult[int])
        assert_type(future.get(), int)
        assert_type(future.get(timeout=2.0), int)
        assert_type(future.ready(), bool)
        assert_type(future.wait(1.0), bool)
        assert_type(future.successful(), bool)

        jobs = open_channel[int]("queue")
        results = open_channel[str]("queue")
        done = pool.stream(label, jobs.receiver, results.sender)
        assert_type(done, Future[None])
        assert_type(done.result(timeout=1.0), None)
        # The whole channel stands for either half; variance applies as usual.
        assert_type(pool.stream(square, open_channel[bool](), open_channel[float]()), Future[None])

        assert_type(pool.map(square, range(3), task_timeout=0.5), list[int])
        assert_type(pool.imap(square, range(3), task_timeout=0.5), ResultIterator[int])
        assert_type(pool.imap(square, range(3), readahead=(100, 1 << 20)), ResultIterator[int])
        assert_type(pool.imap_unordered(label, range(3), readahead=(8, 4096)), ResultIterator[str])

        assert_type(pool.close(), None)
        assert_type(pool.join(timeout=1.0), None)
        assert_type(pool.terminate(), None)


def show(n: int) -> None: ...


def show_all(ns: list[int]) -> None: ...


def oops(exc: BaseException) -> None: ...


def stdlib_forms() -> None:
    assert_type(Pool(processes=4, task_timeout=10.0), Pool)
    with Pool(processes=2) as pool:
        assert_type(pool.apply(add, args=(1, 2)), int)
        assert_type(pool.apply(label, args=(1,), kwds={"prefix": "n"}), str)
        assert_type(pool.apply_async(add, (1, 2), callback=show), AsyncResult[int])
        assert_type(pool.apply_async(add, (1, 2), error_callback=oops), AsyncResult[int])
        assert_type(pool.apply_async(add, args=(1, 2)), AsyncResult[int])
        assert_type(pool.apply_async(label, kwds={"n": 1}, callback=print), AsyncResult[str])
        assert_type(pool.map_async(square, [1], callback=show_all), AsyncResult[list[int]])
        assert_type(pool.starmap_async(add, [(1, 2)], error_callback=oops), AsyncResult[list[int]])
        assert_type(pool.submit(add, 1, b=2), Future[int])
        assert_type(pool.shutdown(wait=False, cancel_futures=True), None)


def executor_calls() -> None:
    with PoolExecutor(
        max_workers=2, mp_context="spawn", initializer=setup, initargs=("w", 1)
    ) as ex:
        assert_type(ex, PoolExecutor)
        executor: Executor = ex
        assert_type(executor.submit(square, 2), Future[int])
        assert_type(ex.submit(label, 1, prefix="n"), Future[str])
        assert_type(ex.map(add, [1], [2], timeout=1.0, chunksize=4), Iterator[int])
        assert_type(ex.pool, Pool)
        assert_type(ex.shutdown(cancel_futures=True), None)
