"""The state the threads of one pool share, and the calls any thread makes on it.

Callers submit jobs, feed ``imap`` chunks, give up on calls and close the
pool from their own threads; the dispatcher thread (``dispatcher``) reads
and changes the same state. All of it is guarded by ``lock``; each job's
condition is built on that lock. Writing to the wake-up pipe tells the
dispatcher that something changed.
"""

from __future__ import annotations

import contextlib
import enum
import os
import queue
import threading
from collections import deque
from collections.abc import Callable
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess

from .._errors import ChannelClosed, PoolBroken, PoolClosed, SerializationError
from .jobs import Chunk, IterJob, Job

__all__ = ["PoolState", "State", "log_exception"]


class State(enum.Enum):
    """Whether a pool takes work, finishes it, or stops now."""

    RUNNING = "running"
    CLOSING = "closed"
    TERMINATING = "terminated"


class PoolState:
    """The jobs, workers' pids and life cycle of one pool, guarded by ``lock``."""

    def __init__(self, ctx: BaseContext, workers: int) -> None:
        self.ctx: BaseContext = ctx
        self.workers: int = workers
        self.lock: threading.Lock = threading.Lock()
        self._state = State.RUNNING
        self._kill = False  # stop the workers with SIGKILL, not SIGTERM first
        # Why the pool cannot run tasks, and the exception that says so.
        self._broken: tuple[str, BaseException | None] | None = None
        self._queue: deque[Job] = deque()
        self._jobs: set[Job] = set()
        self._processes: dict[int, BaseProcess] = {}
        self.started: int = 0
        self._notices: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._notifier: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)

    # -- called from any thread ------------------------------------------------

    def condition(self) -> threading.Condition:
        """A condition on the pool's lock, for a job's waiters."""
        return threading.Condition(self.lock)

    def submit(self, job: Job) -> None:
        """Queue a new job; raise if the pool no longer takes work."""
        with self.lock:
            self._check_open()
            if job.notify is not None and self._notifier is None:
                self._notifier = threading.Thread(
                    target=self._notify, name="channels-pool-callbacks", daemon=True
                )
                self._notifier.start()
            job.notifier = self._notifier
            if job.finished:  # nothing to do, e.g. map over an empty input
                self._forget(job)
                return
            self._jobs.add(job)
            job.on_finished = self._forget
            self._schedule(job)

    def feed(
        self,
        job: IterJob,
        chunk: Chunk | None,
        *,
        done: bool,
        error: Exception | None = None,
        failure: SerializationError | None = None,
    ) -> None:
        """Add a chunk an ``imap`` caller read and pickled, and whether (or how) the input ended.

        ``error`` is what reading the input raised; ``failure`` is why the
        input after the chunk could not be pickled, which fails the job there.
        """
        with self.lock:
            if chunk is not None:
                job.add_chunk(chunk)
            if failure is not None:
                job.fail(job.read, failure)
            if error is not None:
                job.input_error = error
            if done:
                job.end_input()
            self._schedule(job)

    def abandon(self, job: Job, reason: str) -> None:
        """Stop a job whose results nobody will take; the workers running it are replaced."""
        with self.lock:
            if not job.finished:
                job.abandoned = True
                job.fail(0, ChannelClosed(reason))

    def close(self) -> None:
        """Take no new work; workers exit once the work already submitted is done."""
        with self.lock:
            if self._state is State.RUNNING:
                self._state = State.CLOSING
            self._wake()

    def cancel_pending(self) -> None:
        """Fail every job none of whose tasks has gone to a worker yet."""
        with self.lock:
            for job in list(self._jobs):
                if not job.started:
                    job.fail(0, PoolClosed("the pool was shut down before this call started"))

    def cut_inputs(self) -> None:
        """Make every ``imap`` still reading its input stop after what it has read."""
        with self.lock:
            for job in list(self._jobs):
                if isinstance(job, IterJob) and not job.input_done:
                    job.input_error = PoolClosed(
                        "the pool was shut down before this imap read all its input"
                    )
                    job.end_input()
            self._wake()

    @property
    def running(self) -> bool:
        """Whether the pool still takes new work."""
        return self._state is State.RUNNING

    def pids(self) -> list[int]:
        """The process ids of the live workers."""
        with self.lock:
            return list(self._processes)

    def _record_start(self, process: BaseProcess) -> None:
        """Count a worker process just started, and know it by its pid."""
        with self.lock:
            self.started += 1
            self._processes[process.pid or 0] = process

    # -- helpers called with the lock held --------------------------------------

    def _check_open(self) -> None:
        if self._broken is not None:
            raise self._broken_error()
        if self._state is not State.RUNNING:
            raise PoolClosed(f"the pool is {self._state.value}; it takes no new work")

    def _schedule(self, job: Job) -> None:
        if job.has_pending() and not job.queued:
            job.queued = True
            self._queue.append(job)
        self._wake()

    def _forget(self, job: Job) -> None:
        self._jobs.discard(job)
        if job.notify is not None:
            self._notices.put(job)
        self._wake()

    def _notify(self) -> None:
        """The callback thread: run each finished job's notice, until the pool has stopped."""
        while (job := self._notices.get()) is not None:
            try:
                assert job.notify is not None
                job.notify()
            except Exception:
                log_exception("a pool callback raised")
            finally:
                with job.cond:
                    job.notified = True
                    job.cond.notify_all()

    def _fail_all(self, error: Callable[[], BaseException]) -> None:
        for job in list(self._jobs):
            job.fail(-1, error())
        self._queue.clear()

    def _broken_error(self) -> PoolBroken:
        assert self._broken is not None
        why, cause = self._broken
        if cause is None:  # the reason says it all
            return PoolBroken(f"the pool is broken: {why}")
        error = PoolBroken(f"the pool is broken: {why} ({type(cause).__name__}: {cause})")
        error.__cause__ = cause
        return error

    def _wake(self) -> None:
        if self._wake_w >= 0:
            with contextlib.suppress(BlockingIOError):
                os.write(self._wake_w, b"!")


def log_exception(message: str) -> None:
    """Log the exception being handled; ``logging`` is imported only when one happens."""
    import logging  # noqa: PLC0415

    logging.getLogger(__name__).exception(message)
