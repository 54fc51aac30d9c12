"""What the pool hands back: ``AsyncResult`` and the ``imap`` iterator.

Both are thin typed views on a job. They keep the pool alive while they are,
so that ``Pool(2).apply_async(f).get()`` works, and the iterator reads its
input lazily, in the caller's thread, a bounded distance ahead of the results
taken so far.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator, Sequence
from itertools import chain, islice
from typing import Generic, TypeVar, cast, final

from .._errors import ChannelTimeout
from .._timing import CALLBACK_LOOK, PROGRESS_LOOK, deadline_after
from .dispatcher import Engine
from .jobs import BatchJob, Chunk, IterJob, pack
from .progress import Progress

__all__ = ["AsyncResult", "ResultIterator", "wait_batch"]

# Covariant: these objects only hand out R, so an AsyncResult[bool] is an AsyncResult[int].
R_co = TypeVar("R_co", covariant=True)


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def wait_batch(
    engine: Engine, job: BatchJob, timeout: float | None, progress: Progress | None
) -> list[object]:
    """Wait for every result of ``job`` (reporting progress), then return them or raise."""
    deadline = deadline_after(timeout)
    try:
        while True:
            with job.cond:
                if not job.finished:
                    left = _remaining(deadline)
                    # Deliveries do not wake this wait: look at the progress now and then.
                    wait_for = (
                        left if progress is None else min(left or PROGRESS_LOOK, PROGRESS_LOOK)
                    )
                    job.cond.wait(wait_for)
                finished, done = job.finished, job.delivered
            if finished:
                break
            if progress is not None:
                progress.update(done)
            if deadline is not None and time.monotonic() >= deadline:
                engine.abandon(job, f"{job.spec.name} timed out")
                raise ChannelTimeout(f"{job.spec.name} did not finish within {timeout} s")
    except BaseException:
        engine.abandon(job, f"{job.spec.name} was interrupted")
        if progress is not None:
            progress.finish(job.delivered)
        raise
    if progress is not None:
        progress.finish(job.delivered)
    if job.error is not None:
        raise job.error
    return job.results


@final
class AsyncResult(Generic[R_co]):
    """The future result of ``apply_async``, ``map_async`` or ``starmap_async``."""

    def __init__(self, job: BatchJob, single: bool, keepalive: object) -> None:
        self._job = job
        self._single = single
        self._keepalive = keepalive

    def ready(self) -> bool:
        """Whether the call has finished, successfully or not, and its callback has run."""
        with self._job.cond:
            return self._job.settled()

    def successful(self) -> bool:
        """Whether the call finished without raising; ``ValueError`` if it is not ready."""
        with self._job.cond:
            if not self._job.settled():
                raise ValueError(f"{self._job.spec.name} has not finished yet")
            return self._job.error is None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the call finishes or ``timeout`` seconds pass; return ``ready()``."""
        job = self._job
        deadline = deadline_after(timeout)
        with job.cond:
            while not job.settled():
                left = _remaining(deadline)
                if left == 0.0:
                    break
                if job.finished:  # its callback runs: look again if that thread ends first
                    left = CALLBACK_LOOK if left is None else min(left, CALLBACK_LOOK)
                job.cond.wait(left)
            return job.settled()

    def get(self, timeout: float | None = None) -> R_co:
        """Return the result, or raise the call's exception, or ``ChannelTimeout``."""
        if not self.wait(timeout):
            raise ChannelTimeout(f"{self._job.spec.name} did not finish within {timeout} s")
        if self._job.error is not None:
            raise self._job.error
        results = self._job.results
        return cast(R_co, results[0] if self._single else results)

    def __repr__(self) -> str:
        state = "ready" if self.ready() else "pending"
        return f"<AsyncResult {self._job.spec.name} {state}>"


@final
class ResultIterator(Iterator[R_co]):
    """The results of ``imap`` or ``imap_unordered``, read lazily from the input."""

    def __init__(
        self,
        engine: Engine,
        job: IterJob,
        source: Iterator[object] | Sequence[object],
        *,
        progress: Progress | None,
        timeout: float | None,
        keepalive: object,
    ) -> None:
        self._engine = engine
        self._job = job
        self._source = source
        self._progress = progress
        self._timeout = timeout
        self._keepalive = keepalive
        self._done = False
        self._run: Iterator[R_co] = iter(())
        self._finalizer = weakref.finalize(
            self, engine.abandon, job, f"the iterator of {job.spec.name} was dropped"
        )
        self._refill()

    def __iter__(self) -> Iterator[R_co]:
        """Iterate without a Python call per result: results come in runs, chained in C."""
        return chain.from_iterable(self._runs())

    def __next__(self) -> R_co:
        return self.next(self._timeout)

    def next(self, timeout: float | None = None) -> R_co:
        """The next result, waiting at most ``timeout`` seconds (``ChannelTimeout``)."""
        for value in self._run:  # the current run, shared with ``__iter__``
            return value
        self._fetch(timeout)
        return next(self._run)

    def close(self) -> None:
        """Stop: no more input is read and the results still to come are dropped."""
        if not self._done:
            self._end()

    def _runs(self) -> Iterator[Iterator[R_co]]:
        """The runs of results, each an iterator shared with ``next()``."""
        while True:
            run = self._run
            yield run  # the chain takes it to its end
            if self._run is not run:  # next() took the following run meanwhile
                continue
            try:
                self._fetch(self._timeout)
            except StopIteration:
                return

    def _fetch(self, timeout: float | None) -> None:
        """Wait for the next run of results; raise the job's error or ``StopIteration``."""
        if self._done:
            raise StopIteration
        job = self._job
        deadline = deadline_after(timeout)
        try:
            while True:
                self._refill()
                with job.cond:
                    run = self._take(deadline, timeout)
                if run is not None:
                    self._run = iter(cast("list[R_co]", run))
                    if self._progress is not None:
                        self._progress.update(job.taken - len(run))
                    return
        except StopIteration:
            self._end()
            raise
        except ChannelTimeout:
            raise
        except BaseException:
            self._end()
            raise

    def _take(self, deadline: float | None, timeout: float | None) -> list[object] | None:
        """With the lock held: the next run of results, or None when it is time to read input."""
        job = self._job
        while True:
            run = job.pop_chunk()
            if run is not None:
                return run
            error = job.failed_here()
            if error is not None:
                raise error
            if job.exhausted():
                if job.input_error is not None:
                    raise job.input_error
                raise StopIteration
            if job.refill_due():
                return None
            left = _remaining(deadline)
            if left == 0.0:
                raise ChannelTimeout(f"no result of {job.spec.name} within {timeout} s")
            job.cond.wait(left)

    def _refill(self) -> None:
        """Read and pickle inputs, outside the lock, a chunk at a time, while ``readahead`` allows.

        Each chunk is handed over as soon as it is read, so the workers start
        on the first while the rest is read.
        """
        job = self._job
        while True:
            with job.cond:
                want = job.wanted()
                start = job.read
            if want == 0:
                return
            items: Sequence[object]
            error: Exception | None = None
            if isinstance(self._source, Sequence):  # a range travels as a range
                items = self._source[start : start + want]
            else:
                items = []
                try:
                    items.extend(islice(self._source, want))  # keeps what it read before an error
                except Exception as exc:
                    error = exc
            payload, count, failure = pack(job.spec, start, items) if items else (None, 0, None)
            chunk = None if payload is None else Chunk(job, start, count, payload)
            done = error is not None or failure is not None or len(items) < want
            self._engine.feed(job, chunk, done=done, error=error, failure=failure)
            if done:
                return

    def _end(self) -> None:
        self._done = True
        self._finalizer()
        if self._progress is not None:
            self._progress.finish(self._job.taken)
