"""``Pool``: the calls of ``multiprocessing.pool.Pool``, typed, under every start method."""

from __future__ import annotations

import gc
import itertools
import multiprocessing
import os
import pickle
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, assert_type

import pytest

from channels import (
    ChannelBroken,
    ChannelClosed,
    ChannelError,
    ChannelTimeout,
    ConfigError,
    PoolBroken,
    PoolClosed,
    TaskTimeout,
)
from channels._pool import AsyncResult, Pool, ResultIterator
from channels._pool.jobs import BatchJob, CallSpec, Chunk, IterJob
from channels._pool.worker_handles import frame

import pool_funcs as f
from support import WAIT, pid_alive

pytestmark = pytest.mark.timeout(60)


# -- the seed programs, under every start method --------------------------------


def test_seeds(method: str) -> None:
    with Pool(workers=2, context=method) as pool:
        assert pool.map(square := f.square, range(10), timeout=WAIT) == [
            square(x) for x in range(10)
        ]
        assert pool.starmap(f.add, zip(range(6), range(6, 12), strict=True), timeout=WAIT) == [
            6,
            8,
            10,
            12,
            14,
            16,
        ]
        assert pool.apply_async(f.add, 1, 2).get(timeout=WAIT) == 3
        assert pool.apply_async(f.add, 1, b=2).get(timeout=WAIT) == 3
        assert pool.apply(f.add, a=4, b=5) == 9
        assert list(pool.imap(f.square, range(10), timeout=WAIT)) == [x * x for x in range(10)]
        unordered = pool.imap_unordered(f.square, range(10), timeout=WAIT)
        assert sorted(unordered) == [x * x for x in range(10)]
        assert pool.map_async(f.square, range(5)).get(timeout=WAIT) == [0, 1, 4, 9, 16]
        assert pool.starmap_async(f.add, [(1, 2), (3, 4)]).get(timeout=WAIT) == [3, 7]


def test_uses_the_requested_start_method(method: str) -> None:
    with Pool(2, context=method) as pool:
        assert method in repr(pool)
        pids = set(pool.map(f.pid_of, range(20), chunksize=1, timeout=WAIT))
        assert pids <= set(pool._engine.pids())
        assert len(pool._engine.pids()) == 2


def test_context_object_and_default_workers() -> None:
    with Pool(context=multiprocessing.get_context("fork")) as pool:
        assert pool.workers == (multiprocessing.cpu_count() or 1)
        assert pool.map(f.double, [1, 2], timeout=WAIT) == [2, 4]


def test_empty_inputs() -> None:
    with Pool(2, context="fork") as pool:
        assert pool.map(f.square, [], timeout=WAIT) == []
        assert pool.starmap(f.add, [], timeout=WAIT) == []
        assert list(pool.imap(f.square, [], timeout=WAIT)) == []
        assert pool.map_async(f.square, []).get(timeout=WAIT) == []


# -- chunking and laziness ------------------------------------------------------------


def _spec(chunksize: int | None = None, workers: int = 2) -> CallSpec:
    return CallSpec(b"", 0, "map(test)", chunksize=chunksize, workers=workers)


def test_default_chunksize_follows_length_workers_and_cost() -> None:
    cond = threading.Condition()
    job = BatchJob(cond, _spec(), list(range(1000)))
    assert job.chunk_size() == 1  # nothing known about the cost of a call yet
    job.measured(10, 10e-6)  # cheap calls: len / (4 * workers)
    assert job.chunk_size() == 125
    job.measured(10, 10.0)  # expensive calls: one at a time
    assert job.chunk_size() == 1
    assert BatchJob(cond, _spec(chunksize=7), list(range(1000))).chunk_size() == 7
    # Chunks shrink as the input runs out, so the workers finish together, but not
    # below about 2 ms of calls: 20 calls of 100 us.
    tail = BatchJob(cond, _spec(), list(range(1000)))
    tail.measured(10, 1e-3)
    sizes = _chunk_sizes(tail)
    assert sum(sizes) == 1000
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] == 125
    assert min(sizes[:-1]) == 20
    # Calls so cheap that 2 ms of them outnumber a chunk are never cut finer.
    cheap = BatchJob(cond, _spec(), list(range(1000)))
    cheap.measured(10, 10e-6)
    assert _chunk_sizes(cheap) == [125] * 8
    unknown_length = IterJob(cond, _spec(), None, ordered=True)
    unknown_length.measured(100, 100e-6)
    assert 1000 <= unknown_length.chunk_size() <= 10_000


def _chunk_sizes(job: BatchJob) -> list[int]:
    sizes: list[int] = []
    while (chunk := job.take(job.chunk_size())) is not None:
        sizes.append(len(chunk[1]))
    return sizes


def test_imap_reads_ahead_within_its_items_and_bytes() -> None:
    cond = threading.Condition()
    job = IterJob(cond, _spec(chunksize=1), None, ordered=True, readahead=(10, 500))
    with cond:
        while n := job.wanted():
            job.add_chunk(Chunk(job, job.read, n, bytes(100)))
        assert job.read == 5  # 500 bytes of 100-byte inputs
        job.deliver(0, [0, 1])
        assert job.pop_chunk() == [0, 1]
        while n := job.wanted():
            job.add_chunk(Chunk(job, job.read, n, bytes(100)))
        assert job.read == 7  # taking two results made room for two inputs
        job.deliver(2, [2, 3, 4, 5, 6])
        assert job.pop_chunk() == [2, 3, 4, 5, 6]
        while n := job.wanted():
            job.add_chunk(Chunk(job, job.read, n, bytes(1)))
        assert job.read == 7 + 10  # tiny inputs: the item bound holds


def test_many_small_tasks_are_batched() -> None:
    with Pool(2, context="fork") as pool:
        start = time.monotonic()
        assert pool.map(f.square, range(100_000), timeout=WAIT)[-1] == 99_999**2
        elapsed = time.monotonic() - start
    # One message per call would take tens of seconds here.
    assert elapsed < 10.0


def test_large_inputs_and_results_both_ways() -> None:
    # Messages far larger than a pipe's buffer, several per worker at once.
    blobs = [bytes([i]) * 3_000_000 for i in range(8)]
    with Pool(2, context="fork") as pool:
        assert pool.map(f.identity, blobs, chunksize=2, timeout=WAIT) == blobs
        assert list(pool.imap(f.identity, blobs, chunksize=1, timeout=WAIT)) == blobs


def test_chunk_frames_read_back_by_connection() -> None:
    reader, writer = multiprocessing.Pipe(duplex=False)
    payloads = [b"", b"x", bytes(range(256)) * 1000]

    def write() -> None:
        for payload in payloads:
            view = memoryview(frame(payload))
            while view:
                view = view[os.write(writer.fileno(), view) :]

    with reader, writer:
        thread = threading.Thread(target=write)
        thread.start()
        assert [reader.recv_bytes() for _ in payloads] == payloads
        thread.join(WAIT)


def test_imap_of_an_endless_iterable() -> None:
    with Pool(2, context="fork") as pool:
        first = list(itertools.islice(pool.imap(f.square, itertools.count(), timeout=WAIT), 50))
        assert first == [x * x for x in range(50)]
        some = set(
            itertools.islice(pool.imap_unordered(f.double, itertools.count(), timeout=WAIT), 50)
        )
        assert len(some) == 50


def test_imap_reads_a_bounded_distance_ahead() -> None:
    drawn = 0

    def numbers() -> Iterator[int]:
        nonlocal drawn
        for x in itertools.count():
            drawn = x + 1
            yield x

    with Pool(2, context="fork") as pool:
        results = pool.imap(f.square, numbers(), chunksize=1, timeout=WAIT)
        for x in range(20):
            assert next(results) == x * x
        time.sleep(0.2)
        # 4 chunks of max(2, chunksize) per worker ahead of what was taken.
        assert drawn <= 20 + 4 * 2 * 2
        results.close()


def test_imap_of_count_reads_a_few_thousand_ahead_by_default() -> None:
    drawn = 0

    def numbers() -> Iterator[int]:
        nonlocal drawn
        for x in itertools.count():
            drawn = x + 1
            yield x

    with Pool(2, context="fork") as pool:
        results = pool.imap(f.square, numbers(), timeout=WAIT)
        assert [next(results) for _ in range(10)] == [x * x for x in range(10)]
        assert drawn <= 10 + 8192
        for x in range(10, 100_010):
            assert next(results) == x * x
        assert drawn <= 100_010 + 8192
        results.close()


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
@pytest.mark.parametrize("readahead", [None, (1000, 8 << 20)])
def test_imap_of_large_items_holds_a_bounded_number_of_them(
    method: str, readahead: tuple[int, int] | None
) -> None:
    mib = 1 << 20
    produced = 0

    def blobs() -> Iterator[bytes]:
        nonlocal produced
        while True:
            produced += 1
            if produced > 1000:  # far past any bound: stop before memory runs out
                raise RuntimeError("imap read far too much of its input")
            yield bytes([produced % 256]) * mib

    bound = 32 if readahead is None else 8
    with Pool(2, context=method) as pool:
        base = _rss()
        results = pool.imap(f.size_of, blobs(), timeout=WAIT, readahead=readahead)
        assert [next(results) for _ in range(10)] == [mib] * 10
        assert produced <= 10 + bound
        peak = 0
        for taken in range(11, 201):
            assert next(results) == mib
            assert produced <= taken + bound
            peak = max(peak, _rss() - base)
        results.close()
    # Inputs in flight, pickled chunks and allocator slack: a few times the bound at most.
    assert peak < 4 * bound * mib + 32 * mib


def test_imap_stops_reading_when_the_pool_is_left() -> None:
    with Pool(2, context="fork") as pool:
        results = pool.imap(f.square, itertools.count(), chunksize=1, timeout=WAIT)
        assert next(results) == 0
    with pytest.raises(PoolClosed, match="shut down"):
        list(results)


def test_imap_then_close_then_iterate() -> None:
    pool = Pool(2, context="fork")
    results = pool.imap(f.square, range(100), chunksize=3, timeout=WAIT)
    pool.close()
    assert list(results) == [x * x for x in range(100)]
    pool.join(timeout=WAIT)


def test_imap_mixing_next_and_iteration() -> None:
    with Pool(2, context="fork") as pool:
        results = pool.imap(f.square, range(101), chunksize=7, timeout=WAIT)
        assert next(results) == 0
        pairs = [(x, next(results, None)) for x in results]
        assert [x for pair in pairs for x in pair if x is not None] == [
            x * x for x in range(1, 101)
        ]


def test_imap_next_with_timeout() -> None:
    with Pool(1, context="fork") as pool:
        results = pool.imap(f.sleep_then, [2.0])
        assert isinstance(results, ResultIterator)
        with pytest.raises(ChannelTimeout):
            results.next(timeout=0.05)
        pool.terminate()


# -- progress -------------------------------------------------------------------------


def test_on_progress_reports_done_and_total() -> None:
    calls: list[tuple[int, int | None]] = []
    lazy: list[tuple[int, int | None]] = []

    def record(done: int, total: int | None) -> None:
        calls.append((done, total))

    def record_lazy(done: int, total: int | None) -> None:
        lazy.append((done, total))

    with Pool(2, context="fork") as pool:
        pool.map(f.slow_square, range(20), chunksize=2, on_progress=record, timeout=WAIT)
        assert calls[0] == (0, 20)
        assert calls[-1] == (20, 20)
        assert [done for done, _ in calls] == sorted({done for done, _ in calls})
        list(pool.imap(f.square, iter(range(30)), on_progress=record_lazy, timeout=WAIT))
        assert lazy[0] == (0, None)
        assert lazy[-1] == (30, None)


def test_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    with Pool(2, context="fork") as pool:
        assert pool.map(f.square, range(10), progress=True, timeout=WAIT)[-1] == 81
        assert sorted(pool.imap_unordered(f.square, range(5), progress=True, timeout=WAIT)) == [
            0,
            1,
            4,
            9,
            16,
        ]
    err = capsys.readouterr().err
    assert "10/10" in err
    assert "5/5" in err


def test_progress_without_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with Pool(1, context="fork") as pool:
        with pytest.raises(ImportError, match=r"pip install 'typed-channels\[progress\]'"):
            pool.map(f.square, range(3), progress=True)
        assert pool.map(f.square, range(3), timeout=WAIT) == [0, 1, 4]


# -- results and life cycle ---------------------------------------------------------------


def test_async_result_api() -> None:
    with Pool(2, context="fork") as pool:
        slow = pool.apply_async(f.sleep_then, 0.3, value=5)
        assert isinstance(slow, AsyncResult)
        assert not slow.ready()
        with pytest.raises(ValueError, match="not finished"):
            slow.successful()
        assert slow.wait(timeout=0.01) is False
        with pytest.raises(ChannelTimeout):
            slow.get(timeout=0.01)
        assert slow.get(timeout=WAIT) == 5
        assert slow.ready()
        assert slow.successful()
        failed = pool.apply_async(f.fail_on, 3)
        assert failed.wait(timeout=WAIT)
        assert not failed.successful()
        with pytest.raises(ValueError, match="bad input 3"):
            failed.get(timeout=WAIT)


def test_map_timeout() -> None:
    with Pool(1, context="fork") as pool:
        with pytest.raises(ChannelTimeout, match="within"):
            pool.map(f.sleep_then, [1.0, 1.0, 1.0], chunksize=1, timeout=0.1)
        pool.terminate()


def test_leaving_the_block_waits_for_submitted_work() -> None:
    with Pool(2, context="fork") as pool:
        pending = [pool.apply_async(f.sleep_then, 0.2, value=i) for i in range(3)]
    assert [result.get(timeout=0) for result in pending] == [0, 1, 2]


def test_leaving_the_block_on_an_exception_terminates() -> None:
    def leave_by_exception() -> tuple[AsyncResult[None], list[int]]:
        with Pool(2, context="fork") as pool:
            hanging = pool.apply_async(f.hang)
            pids = pool._engine.pids()
            raise RuntimeError((hanging, pids))

    start = time.monotonic()
    with pytest.raises(RuntimeError) as info:
        leave_by_exception()
    assert time.monotonic() - start < 10
    hanging, pids = info.value.args[0]
    assert not any(pid_alive(pid) for pid in pids)
    with pytest.raises(PoolClosed, match="terminated"):
        hanging.get(timeout=WAIT)


def test_close_join_terminate() -> None:
    pool = Pool(2, context="fork")
    with pytest.raises(ChannelError, match="close"):
        pool.join(timeout=WAIT)
    assert pool.map(f.square, range(4), timeout=WAIT) == [0, 1, 4, 9]
    pool.close()
    with pytest.raises(PoolClosed):
        pool.map(f.square, range(4))
    with pytest.raises(PoolClosed):
        pool.apply_async(f.square, 2)
    pool.join(timeout=WAIT)
    pool.terminate()  # harmless once joined

    pool = Pool(2, context="fork")
    hanging = pool.apply_async(f.hang)
    pool.terminate()
    pool.join(timeout=WAIT)
    with pytest.raises(PoolClosed):
        hanging.get(timeout=WAIT)


def test_join_timeout() -> None:
    pool = Pool(1, context="fork")
    pool.apply_async(f.sleep_then, 2.0)
    pool.close()
    with pytest.raises(ChannelTimeout):
        pool.join(timeout=0.1)
    pool.terminate()


def test_result_keeps_an_unreferenced_pool_alive() -> None:
    pool = Pool(1, context="fork")
    engine = pool._engine
    results = [pool.apply_async(f.add, 2, 3)]
    del pool
    gc.collect()
    assert results[0].get(timeout=WAIT) == 5

    def drop() -> None:
        results.clear()
        gc.collect()

    with pytest.warns(ResourceWarning, match="garbage collected"):
        drop()
    engine.join(timeout=WAIT)


def test_max_tasks_per_child_replaces_workers() -> None:
    with Pool(1, context="fork", max_tasks_per_child=2) as pool:
        pids = pool.map(f.pid_of, range(6), chunksize=1, timeout=WAIT)
    assert len(set(pids)) == 3
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4] == pids[5]


def test_initializer_runs_in_every_worker(method: str) -> None:
    with Pool(2, context=method, initializer=f.init_set, initargs=("ready",)) as pool:
        assert pool.map(f.get_initialized, range(4), chunksize=1, timeout=WAIT) == [["ready"]] * 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"workers": 0}, "workers"),
        ({"workers": 1.5}, "workers"),
        ({"context": "bogus"}, "start method"),
        ({"context": 3}, "context"),
        ({"max_tasks_per_child": 0}, "max_tasks_per_child"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Pool(**kwargs)  # type: ignore[arg-type]


def test_bad_chunksize() -> None:
    with Pool(1, context="fork") as pool, pytest.raises(ConfigError, match="chunksize"):
        pool.map(f.square, range(3), chunksize=0)


@pytest.mark.parametrize("readahead", [(0, 1 << 20), (10, 0), (10,), 10, (1.5, 10), (True, 10)])
def test_bad_readahead(readahead: object) -> None:
    with Pool(1, context="fork") as pool, pytest.raises(ConfigError, match="readahead"):
        pool.imap(f.square, range(3), readahead=readahead)  # type: ignore[arg-type]


def test_a_chunk_larger_than_the_readahead_is_read_whole() -> None:
    with Pool(2, context="fork") as pool:
        results = pool.imap(f.square, range(500), chunksize=100, readahead=(10, 1 << 20))
        assert list(results) == [x * x for x in range(500)]
    cond = threading.Condition()
    job = IterJob(cond, _spec(chunksize=100), None, ordered=True, readahead=(10, 1 << 20))
    with cond:
        assert job.wanted() == 100
        job.add_chunk(Chunk(job, 0, 100, bytes(100)))
        assert job.wanted() == 0  # one chunk at a time


# -- types: checked by mypy, not run --------------------------------------------------------

if TYPE_CHECKING:

    def typing_examples(pool: Pool) -> None:
        assert_type(pool.map(f.square, range(3)), list[int])
        assert_type(pool.starmap(f.add, zip(range(3), range(3), strict=True)), list[int])
        assert_type(pool.apply(f.add, 1, b=2), int)
        assert_type(pool.apply_async(f.add, 1, 2), AsyncResult[int])
        assert_type(pool.apply_async(f.add, 1, 2).get(1.0), int)
        assert_type(pool.map_async(f.square, [1]), AsyncResult[list[int]])
        assert_type(pool.imap(f.square, [1]), ResultIterator[int])
        assert_type(next(pool.imap_unordered(f.square, [1])), int)
        # Misuse that must not type-check (an unneeded ignore is itself an error):
        pool.map(f.square, ["a"])  # type: ignore[arg-type]
        pool.starmap(f.add, zip(range(3), ["a"], strict=True))  # type: ignore[arg-type]
        pool.apply(f.add, 1)  # type: ignore[call-overload]
        pool.apply(f.add, 1, "2")  # type: ignore[call-overload]
        pool.apply_async(f.add, 1, c=2)  # type: ignore[call-arg]
        pool.apply(f.add, 1, 2).upper()  # type: ignore[attr-defined]
        Pool(initializer=f.init_set, initargs=(1,))  # type: ignore[arg-type]


def test_the_pools_errors_are_caught_by_the_channel_errors_they_refine() -> None:
    # Code written against the older, plainer types keeps working.
    assert issubclass(PoolClosed, ChannelClosed)
    assert issubclass(PoolBroken, ChannelBroken)
    assert issubclass(TaskTimeout, ChannelTimeout)
    assert issubclass(TaskTimeout, TimeoutError)
    error = TaskTimeout("ran longer")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is TaskTimeout
    assert str(copy) == "ran longer"
