"""The dispatcher's handle on one worker process: its pipes, its chunks, its unsent bytes.

The dispatcher never blocks writing to a worker. A worker busy with one chunk
does not read the next, and a blocked write would stop the dispatcher from
reading the results that worker (or another) is trying to send: each waiting
for the other. So the parent's end of a task pipe is non-blocking, chunks are
queued here, and the dispatcher writes what the pipe takes whenever its
selector says the pipe has room. Each chunk is framed as
``multiprocessing.connection.Connection.send_bytes`` frames it, so the worker
reads it with ``recv_bytes``.
"""

from __future__ import annotations

import os
import selectors
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import final

from ._errors import SerializationError
from ._pool_jobs import CallSpec, Job
from ._pool_process import start_process, starting_processes
from ._pool_remote import describe, dumps
from ._pool_worker import worker_main

__all__ = ["Chunk", "Watch", "WorkerHandle", "frame", "pack", "start_worker", "stop_workers"]

_SHORT = struct.Struct("!i")
_LONG = struct.Struct("!Q")


def frame(payload: bytes) -> bytes:
    """``payload`` with the length header ``Connection.recv_bytes`` expects."""
    size = len(payload)
    if size > 0x7FFFFFFF:
        return _SHORT.pack(-1) + _LONG.pack(size) + payload
    return _SHORT.pack(size) + payload


def pack(
    spec: CallSpec, start: int, items: Sequence[object]
) -> tuple[bytes | None, int, SerializationError | None]:
    """Pickle a chunk: (payload, how many items it holds, the error of the next one).

    An input that cannot be pickled ends the chunk: the items before it are
    sent, and the error is for the caller to charge to that input.
    """
    try:
        return dumps((spec.fn_bytes, spec.kind, items)), len(items), None
    except Exception:
        pass
    for offset, item in enumerate(items):
        try:
            dumps(item)
        except Exception as exc:
            error = SerializationError(
                f"cannot pickle the input {describe(item)} (item {start + offset}) "
                f"of {spec.name}: {exc}"
            )
            error.__cause__ = exc
            payload = dumps((spec.fn_bytes, spec.kind, items[:offset])) if offset else None
            return payload, offset, error
    error = SerializationError(f"cannot pickle the inputs {start}.. of {spec.name} together")
    return None, 0, error


@final
class Chunk:
    """Inputs ``start .. start + count - 1`` of a job, pickled and ready to send."""

    __slots__ = ("count", "job", "payload", "start")

    def __init__(self, job: Job, start: int, count: int, payload: bytes) -> None:
        self.job: Job = job
        self.start: int = start
        self.count: int = count
        self.payload: bytes = payload


@final
class WorkerHandle:
    """One worker process as the dispatcher sees it; used by the dispatcher thread only."""

    __slots__ = (
        "_unsent",
        "budget",
        "outstanding",
        "process",
        "ready",
        "results",
        "results_open",
        "stopping",
        "tasks",
    )

    def __init__(
        self, process: BaseProcess, tasks: Connection, results: Connection, budget: int | None
    ) -> None:
        self.process: BaseProcess = process
        self.tasks: Connection = tasks
        self.results: Connection = results
        self.budget: int | None = budget
        self.ready: bool = False
        self.stopping: bool = False
        self.results_open: bool = True
        self.outstanding: deque[Chunk] = deque()
        self._unsent: deque[memoryview] = deque()
        os.set_blocking(tasks.fileno(), False)

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.process.pid or 0

    @property
    def has_unsent(self) -> bool:
        """Whether bytes wait for room in the task pipe."""
        return bool(self._unsent)

    def send(self, chunk: Chunk) -> None:
        """Give the worker a chunk; it counts as on the worker from now on."""
        self.outstanding.append(chunk)
        if self.budget is not None:
            self.budget = max(0, self.budget - chunk.count)
        self._unsent.append(memoryview(frame(chunk.payload)))
        self.flush()

    def stop(self) -> None:
        """Ask the worker to exit once it is done with its chunks."""
        if not self.stopping:
            self.stopping = True
            self._unsent.append(memoryview(frame(b"")))
            self.flush()

    def flush(self) -> None:
        """Write what the task pipe takes now; a dead worker just stops taking."""
        fd = self.tasks.fileno()
        unsent = self._unsent
        try:
            while unsent:
                written = os.write(fd, unsent[0])
                if written < len(unsent[0]):
                    unsent[0] = unsent[0][written:]
                    return
                unsent.popleft()
        except BlockingIOError:
            return
        except OSError:  # the worker is gone; its sentinel will say how
            unsent.clear()
            self.stopping = True

    def close(self) -> None:
        """Close the parent's ends of the pipes."""
        self._unsent.clear()
        self.tasks.close()
        self.results.close()


@final
class Events:
    """What one wait found: workers with results to read, room to write, or an end."""

    __slots__ = ("exited", "readable", "writable")

    def __init__(self) -> None:
        self.readable: list[WorkerHandle] = []
        self.writable: list[WorkerHandle] = []
        self.exited: list[WorkerHandle] = []


_WAKE, _RESULTS, _TASKS, _SENTINEL = range(4)


@final
class Watch:
    """The one selector the dispatcher waits on.

    It watches every worker's result pipe and process sentinel, the task pipes
    that have bytes waiting for room, and the wake-up pipe other threads write
    to when they submit work.
    """

    def __init__(self, wake_fd: int) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_fd = wake_fd
        self._selector.register(wake_fd, selectors.EVENT_READ, (_WAKE, None))

    def add(self, worker: WorkerHandle) -> None:
        """Watch a new worker's results and exit."""
        self._selector.register(worker.results, selectors.EVENT_READ, (_RESULTS, worker))
        self._selector.register(worker.process.sentinel, selectors.EVENT_READ, (_SENTINEL, worker))

    def stop_reading(self, worker: WorkerHandle) -> None:
        """The worker's result pipe reached end of file: stop watching it."""
        worker.results_open = False
        self._forget(worker.results.fileno())

    def remove(self, worker: WorkerHandle) -> None:
        """Stop watching a worker (before its pipes are closed)."""
        for fd in (worker.tasks.fileno(), worker.results.fileno(), worker.process.sentinel):
            self._forget(fd)

    def wait(self, workers: list[WorkerHandle], timeout: float) -> Events:
        """Wait up to ``timeout`` for something to do; drain the wake-up pipe."""
        for worker in workers:
            fd = worker.tasks.fileno()
            watched = fd in self._selector.get_map()
            if worker.has_unsent and not watched:
                self._selector.register(fd, selectors.EVENT_WRITE, (_TASKS, worker))
            elif watched and not worker.has_unsent:
                self._selector.unregister(fd)
        events = Events()
        for key, _ in self._selector.select(timeout):
            what, worker = key.data
            if worker is None:
                os.read(self._wake_fd, 65536)
            elif what == _RESULTS:
                events.readable.append(worker)
            elif what == _TASKS:
                events.writable.append(worker)
            else:
                events.exited.append(worker)
        return events

    def close(self) -> None:
        """Release the selector."""
        self._selector.close()

    def _forget(self, fd: int) -> None:
        if fd in self._selector.get_map():
            self._selector.unregister(fd)


def start_worker(
    ctx: BaseContext,
    number: int,
    initializer: Callable[..., object] | None,
    initargs: tuple[object, ...],
    budget: int | None,
) -> WorkerHandle:
    """Start worker process number ``number`` with its two pipes."""
    with starting_processes():
        tasks_r, tasks_w = ctx.Pipe(duplex=False)
        results_r, results_w = ctx.Pipe(duplex=False)
        try:
            process = start_process(
                ctx,
                worker_main,
                (tasks_r, results_w, initializer, initargs),
                f"channels-pool-worker-{number}",
            )
        except BaseException:
            tasks_w.close()
            results_r.close()
            raise
        finally:
            tasks_r.close()
            results_w.close()
    return WorkerHandle(process, tasks_w, results_r, budget)


def stop_workers(workers: list[WorkerHandle], grace: float) -> None:
    """Stop and reap every worker: those still busy get SIGTERM, then SIGKILL after ``grace``.

    Workers already told to stop with nothing on them get five times as long
    to exit by themselves first.
    """
    graceful = all(w.stopping and not w.outstanding for w in workers)
    if not graceful:
        for worker in workers:
            worker.process.terminate()
    pending = {w.process.sentinel: w for w in workers}
    _wait_for_exit(pending, grace * (5 if graceful else 1))
    for worker in pending.values():
        worker.process.kill()
    _wait_for_exit(pending, grace)
    for worker in workers:
        worker.process.join(1.0)


def _wait_for_exit(pending: dict[int, WorkerHandle], timeout: float) -> None:
    """Wait until the processes of ``pending`` exit, removing them, for at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        for sentinel in wait(list(pending), timeout=left):
            assert isinstance(sentinel, int)
            pending.pop(sentinel, None)
