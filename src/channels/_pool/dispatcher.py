"""The pool's dispatcher: one thread that feeds chunks to workers and sees them die.

Each worker has its own task pipe and result pipe (see ``worker_handles``). The
dispatcher thread waits in one selector on every result pipe, every worker's
process sentinel, the task pipes it still has bytes for, and a wake-up pipe
that other threads write to when they submit work. A sentinel that fires while
a chunk is still on its worker means the worker died: the chunk fails with
``WorkerCrashed`` if the worker had read it, or goes to another worker if it
had not, and a fresh worker takes its place. Nothing waits on a dead process,
and no chunk is given to a worker already seen dead.

Each worker holds one chunk at a time, so no chunk waits behind a running
task while another worker is idle, and a crash costs one chunk.

The dispatcher also kills workers: one whose task ran longer than its call's
per-task timeout (that task fails with ``TaskTimeout``), and one running a
task of a call that gave up (its caller timed out, was interrupted, or dropped
the iterator), so that no abandoned task holds a worker or keeps ``join``
waiting.

Only the dispatcher thread touches the workers and their pipes. The queue of
jobs, the jobs themselves and the pool's state are guarded by ``lock``. User
callbacks (``callback=``, the futures of ``submit``) run on a thread of their
own, started on first use, so that a slow callback never holds up the workers.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any, cast

from .._errors import (
    ChannelError,
    ChannelTimeout,
    PoolBroken,
    PoolClosed,
    SerializationError,
    TaskTimeout,
    WorkerCrashed,
)
from .._timing import REAP_WAIT, SWEEP_INTERVAL, TERMINATE_GRACE
from .jobs import Chunk, IterJob, Job, pack
from .pool_state import PoolState, State, log_exception
from .processes import (
    UNGUARDED_MAIN,
    exit_description,
    sigint_blocked,
    terminate_at_exit,
    unguarded_main_hint,
)
from .remote_errors import loads, unpack_exception
from .worker_handles import Watch, WorkerHandle, start_worker, stop_workers
from .worker_loop import DONE, INIT_FAILED, PART, READY

__all__ = ["Engine"]

# Give up on a pool whose workers die this many times in a row before they are ready.
_MAX_START_FAILURES = 3


class Engine(PoolState):
    """Worker processes, the dispatcher thread and the queue of jobs of one pool."""

    def __init__(
        self,
        ctx: BaseContext,
        workers: int,
        initializer: Callable[..., object] | None,
        initargs: tuple[object, ...],
        max_tasks_per_child: int | None,
    ) -> None:
        super().__init__(ctx, workers)
        self._initializer = initializer
        self._initargs = initargs
        self._max_tasks = max_tasks_per_child
        # Dispatcher-only state.
        self._workers: list[WorkerHandle] = []
        self._ready_chunks: deque[Chunk] = deque()
        self._start_failures = 0
        self._next_sweep = 0.0
        self._watch = Watch(self._wake_r)
        self._thread = threading.Thread(target=self._run, name="channels-pool", daemon=True)
        with sigint_blocked():  # the thread, and every worker it starts, inherits the mask
            self._thread.start()
        terminate_at_exit(self)

    # -- called from any thread ------------------------------------------------

    def terminate(self, *, kill: bool = False) -> None:
        """Fail every unfinished job and stop the workers now (SIGTERM, then SIGKILL).

        With ``kill``, SIGKILL at once: a worker gets no chance to run a handler.
        """
        with self.lock:
            self._kill = self._kill or kill
            self._state = State.TERMINATING
            self._fail_all(lambda: PoolClosed("the pool was terminated before this task ended"))
            self._wake()
        if threading.current_thread() is self._thread:
            return
        self._thread.join(TERMINATE_GRACE + 4.0)
        if self._thread.is_alive():  # the dispatcher is stuck: do its job
            with self.lock:
                processes = list(self._processes.values())
            for process in processes:
                process.kill()

    def join(self, timeout: float | None = None) -> None:
        """Wait until every worker has exited; ``ChannelTimeout`` if it takes longer."""
        with self.lock:
            if self._state is State.RUNNING:
                raise ChannelError("call close() or terminate() before join()")
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in (self._thread, self._notifier):
            if thread is not None:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
                if thread.is_alive():
                    raise ChannelTimeout(f"the pool's workers did not exit within {timeout} s")

    # -- the dispatcher thread ------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:
            log_exception("the pool's dispatcher failed")
            message = f"the pool's dispatcher failed: {exc!r}"
            with self.lock:
                self._state = State.TERMINATING
                self._fail_all(lambda: PoolBroken(message))
        finally:
            self._stop_all()
            self._notices.put(None)
            self._watch.close()
            with self.lock:
                wake_r, wake_w = self._wake_r, self._wake_w
                self._wake_r = self._wake_w = -1
            os.close(wake_r)
            os.close(wake_w)

    def _loop(self) -> None:
        while True:
            with self.lock:
                state, broken = self._state, self._broken is not None
                idle = not self._jobs
            if state is State.TERMINATING:
                return
            self._cancel_abandoned()
            busy = any(w.chunk is not None for w in self._workers)
            if broken or (state is State.CLOSING and idle and not busy):
                for worker in self._workers:
                    worker.stop()
                if not self._workers:
                    return
            elif state is State.RUNNING or not idle:
                self._start_workers()
                self._dispatch()
            self._wait_and_handle()

    def _cancel_abandoned(self) -> None:
        for worker in self._workers:
            chunk = worker.chunk
            if chunk is not None and chunk.job.abandoned and not worker.stopping:
                worker.kill()

    def _wait_and_handle(self) -> None:
        now = time.monotonic()
        wait = SWEEP_INTERVAL
        for worker in self._workers:
            deadline = worker.deadline()
            if deadline is not None:
                if deadline <= now:
                    worker.kill(timed_out=True)
                else:
                    wait = min(wait, deadline - now)
        events = self._watch.wait(self._workers, wait)
        for worker in events.writable:
            worker.flush()
        for worker in events.readable:
            self._receive(worker)
        dead = events.exited
        now = time.monotonic()
        if now >= self._next_sweep:
            # A sentinel can be held open by a process forked elsewhere: ask the OS too.
            self._next_sweep = now + SWEEP_INTERVAL
            dead.extend(
                w for w in self._workers if w not in dead and w.process.exitcode is not None
            )
        for worker in dead:
            self._bury(worker)

    def _start_workers(self) -> None:
        with self.lock:
            if self._broken is not None or self._state is State.TERMINATING:
                return
        while sum(not w.stopping for w in self._workers) < self.workers:
            try:
                worker = start_worker(
                    self.ctx, self.started + 1, self._initializer, self._initargs, self._max_tasks
                )
            except Exception as exc:
                self._break(exc, "a worker process could not be started")
                return
            self._record_start(worker.process)
            self._workers.append(worker)
            self._watch.add(worker)
            self._dispatch()  # work that waits starts on this worker while the next one starts

    def _dispatch(self) -> None:
        # While no worker is ready (the pool is starting), chunks go to starting
        # workers, which read them once up: the first result waits for no
        # handshake. Later, only ready workers get chunks, so that none waits
        # behind a replacement's start while another worker is free.
        starting = not any(w.ready and not w.stopping for w in self._workers)
        for worker in self._workers:
            if not (worker.ready or starting) or worker.stopping or worker.chunk is not None:
                continue
            if worker.budget == 0 or worker.process.exitcode is not None:
                continue  # a dead worker is buried at the next wait
            chunk = self._next_chunk(worker.budget)
            if chunk is None:
                return
            worker.send(chunk)

    def _next_chunk(self, budget: int | None) -> Chunk | None:
        while self._ready_chunks:
            ready = self._ready_chunks.popleft()
            with self.lock:
                if ready.job.wants(ready.start):
                    return ready
        while True:
            with self.lock:
                while self._queue and not self._queue[0].has_pending():
                    self._queue.popleft().queued = False
                if not self._queue:
                    return None
                job = self._queue[0]
                if isinstance(job, IterJob):  # read and pickled by its caller already
                    chunk = job.take_chunk()
                    if chunk is not None:
                        return chunk
                    continue
                limit = job.chunk_size() if budget is None else min(job.chunk_size(), budget)
                taken = job.take(limit)
            if taken is not None:
                chunk = self._pack(job, *taken)
                if chunk is not None:
                    return chunk

    def _pack(self, job: Job, start: int, items: Sequence[object]) -> Chunk | None:
        """Pickle a chunk; an input that cannot be pickled fails the job at its index."""
        payload, count, failure = pack(job.spec, start, items)
        with self.lock:
            if failure is not None:
                job.fail(start + count, failure)
            if payload is not None:
                job.sent(count, len(payload))
        return None if payload is None else Chunk(job, start, count, payload)

    def _receive(self, worker: WorkerHandle) -> None:
        try:
            answers = worker.read_answers()
        except (EOFError, OSError):
            self._watch.stop_reading(worker)
            return
        for data in answers:
            self._answer(worker, data)

    def _answer(self, worker: WorkerHandle, data: bytes) -> None:
        try:
            message = cast("tuple[Any, ...]", loads(data))
        except BaseException as exc:  # SystemExit from a hostile __reduce__ included
            self._unreadable(worker, exc)
            return
        tag = message[0]
        if tag == READY:
            worker.ready = True
            self._start_failures = 0
            if worker.progress_at is not None:  # a chunk sent while it started: it runs now
                worker.progress_at = time.monotonic()
        elif tag == INIT_FAILED:
            self._break(unpack_exception(message[1]), "the initializer raised in a worker")
        elif tag == PART and worker.chunk is not None:
            _, packed, seconds = message
            try:
                values = cast("list[object]", loads(packed))
            except BaseException as exc:
                self._unreadable(worker, exc)
                return
            worker.progress_at = time.monotonic()
            chunk = worker.chunk
            with self.lock:
                chunk.job.measured(len(values), seconds)
                chunk.job.deliver(chunk.start, values)
            chunk.start += len(values)
            chunk.count -= len(values)
        elif tag == DONE and worker.chunk is not None:
            _, packed, failure, seconds = message
            chunk, worker.chunk = worker.chunk, None
            if worker.budget == 0:
                worker.stop()
            elif failure is None and self._dispatching():
                # The worker's next chunk goes out before these results are unpickled.
                self._dispatch()
            try:
                values = cast("list[object]", loads(packed))
            except BaseException as exc:  # this chunk's last answer: the next ones are in step
                self._fail_unreadable(chunk, exc)
                return
            error = None if failure is None else unpack_exception(failure[1])
            with self.lock:
                job = chunk.job
                job.measured(len(values) + (failure is not None), seconds)
                job.deliver(chunk.start, values)
                if failure is not None and error is not None:
                    job.fail(chunk.start + failure[0], error)

    def _dispatching(self) -> bool:
        with self.lock:
            return self._broken is None and self._state is not State.TERMINATING

    def _unreadable(self, worker: WorkerHandle, exc: BaseException) -> None:
        """A worker's answer cannot be unpickled here: fail the chunk it was about."""
        chunk, worker.chunk = worker.chunk, None
        if chunk is None:
            return
        self._fail_unreadable(chunk, exc)
        # The worker's next answer would be taken for another chunk's: replace it.
        worker.kill()

    def _fail_unreadable(self, chunk: Chunk, exc: BaseException) -> None:
        error = SerializationError(
            f"cannot unpickle the results of {chunk.job.spec.name} here: {exc}"
        )
        error.__cause__ = exc
        with self.lock:
            chunk.job.fail(chunk.start, error)

    def _bury(self, worker: WorkerHandle) -> None:
        """Handle a worker whose process ended: fail or pass on its chunk, replace it."""
        while worker.results_open and _readable(worker.results):
            self._receive(worker)
        worker.process.join(REAP_WAIT)  # it has exited: this only reaps it
        pid, exitcode = worker.process.pid, worker.process.exitcode
        self._watch.remove(worker)
        self._workers.remove(worker)
        with self.lock:
            self._processes.pop(pid or 0, None)
            state = self._state
        chunk = worker.chunk
        if chunk is not None and worker.took_chunk():
            with self.lock:
                chunk.job.fail(chunk.start, self._lost(worker, chunk, pid, exitcode))
        elif chunk is not None:
            self._ready_chunks.appendleft(chunk)  # it never left the pipe
        if worker.ready or worker.stopping:
            pass
        elif exitcode == UNGUARDED_MAIN:
            self._break(None, f"its workers exited at start: {unguarded_main_hint()}")
        elif state is not State.TERMINATING:
            self._start_failures += 1
            if self._start_failures >= _MAX_START_FAILURES:
                self._break(
                    ChannelError(f"worker {pid} {exit_description(exitcode)}"),
                    f"{self._start_failures} workers in a row died while starting",
                )
        worker.chunk = None
        worker.close()
        with contextlib.suppress(ValueError):  # someone else reaped it first
            worker.process.close()

    @staticmethod
    def _lost(
        worker: WorkerHandle, chunk: Chunk, pid: int | None, exitcode: int | None
    ) -> ChannelError:
        """The error of the task a worker was running when it ended."""
        name, index = chunk.job.spec.name, chunk.start
        if worker.timed_out:
            return TaskTimeout(
                f"{name} (item {index}) ran longer than its task_timeout of "
                f"{chunk.job.spec.task_timeout} s; the pool replaced worker {pid}"
            )
        # A timed chunk reports each result: the item at its start is the one that ran.
        timed = chunk.job.spec.task_timeout is not None
        last = index if timed else chunk.start + chunk.count - 1
        items = f"item {index}" if last == index else f"items {index}-{last}"
        return WorkerCrashed(
            f"pool worker {pid} {exit_description(exitcode)} while running "
            f"{name} ({items}); the pool replaced it",
            pid=pid,
            exitcode=exitcode,
        )

    def _break(self, cause: BaseException | None, why: str) -> None:
        """Give up: the pool cannot run tasks (its initializer raises, workers cannot start)."""
        with self.lock:
            if self._broken is None:
                self._broken = (why, cause)
                self._fail_all(self._broken_error)
                self._wake()

    def _stop_all(self) -> None:
        """Make sure no worker outlives the dispatcher: terminate, wait, kill, reap."""
        workers = self._workers
        with self.lock:
            kill = self._kill
        if kill:
            for worker in workers:
                worker.process.kill()
        stop_workers(workers, TERMINATE_GRACE)
        for worker in workers:
            with self.lock:
                self._processes.pop(worker.pid, None)
            self._watch.remove(worker)
            worker.close()
        workers.clear()
        with self.lock:
            self._fail_all(lambda: PoolClosed("the pool stopped before this task ended"))


def _readable(conn: Connection) -> bool:
    """Whether ``conn`` has data (or end of file) to read now."""
    try:
        return conn.poll(0)
    except (EOFError, OSError):
        return False
