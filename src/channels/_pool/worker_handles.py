"""The dispatcher's handle on one worker process: its pipes, its chunks, its unsent bytes.

The dispatcher never blocks writing to a worker. A worker busy with one chunk
does not read the next, and a blocked write would stop the dispatcher from
reading the results that worker (or another) is trying to send: each waiting
for the other. So the parent's end of a task pipe is non-blocking, chunks are
queued here, and the dispatcher writes what the pipe takes whenever its
selector says the pipe has room. Each chunk is framed as
``multiprocessing.connection.Connection.send_bytes`` frames it, so the worker
reads it with ``recv_bytes``.

Answers are read the same way: the parent's end of a result pipe is
non-blocking, and what it holds is kept here until a whole frame is in. A
worker stopped in the middle of an answer (SIGSTOP, a paused container) then
leaves half a frame here, and the dispatcher goes on seeing the other workers
and enforcing their timeouts.

The parent keeps the read end of each task pipe open too. When a worker dies,
the bytes still unread there say whether it ever took its chunk: a chunk it
never read goes to another worker instead of failing.
"""

from __future__ import annotations

import fcntl
import os
import selectors
import struct
import sys
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import final

from .jobs import Chunk
from .processes import start_process, starting_processes
from .worker_loop import worker_main

__all__ = ["Watch", "WorkerHandle", "frame", "start_worker", "stop_workers"]

_SHORT = struct.Struct("!i")
_LONG = struct.Struct("!Q")
# How much one read of a result pipe takes at most.
_READ_SIZE = 1 << 20


def frame(payload: bytes) -> bytes:
    """``payload`` with the length header ``Connection.recv_bytes`` expects."""
    size = len(payload)
    if size > 0x7FFFFFFF:
        return _SHORT.pack(-1) + _LONG.pack(size) + payload
    return _SHORT.pack(size) + payload


@final
class WorkerHandle:
    """One worker process as the dispatcher sees it; used by the dispatcher thread only.

    A worker holds at most one chunk, the one it runs: a chunk never waits
    behind a running task while another worker is idle.
    """

    __slots__ = (
        "_chunk_end",
        "_inbound",
        "_queued",
        "_tasks_read",
        "_unsent",
        "_written",
        "budget",
        "chunk",
        "process",
        "progress_at",
        "ready",
        "results",
        "results_open",
        "stopping",
        "tasks",
        "timed_out",
    )

    def __init__(
        self,
        process: BaseProcess,
        tasks: Connection,
        tasks_read: Connection,
        results: Connection,
        budget: int | None,
    ) -> None:
        self.process: BaseProcess = process
        self.tasks: Connection = tasks
        self.results: Connection = results
        self.budget: int | None = budget
        self.ready: bool = False
        self.stopping: bool = False
        self.timed_out: bool = False
        self.results_open: bool = True
        self.chunk: Chunk | None = None
        # When the worker last showed progress on its chunk: the chunk fully
        # written, or a part of its results received (then the next task has
        # just started). None while writing.
        self.progress_at: float | None = None
        self._tasks_read = tasks_read
        self._unsent: deque[memoryview] = deque()
        self._queued = 0  # bytes ever queued for the task pipe
        self._written = 0  # bytes ever written to it
        self._chunk_end = 0  # where the current chunk's frame ends in that stream
        self._inbound = bytearray()  # answer bytes read, not yet a whole frame
        os.set_blocking(tasks.fileno(), False)
        os.set_blocking(results.fileno(), False)

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.process.pid or 0

    @property
    def has_unsent(self) -> bool:
        """Whether bytes wait for room in the task pipe."""
        return bool(self._unsent)

    def send(self, chunk: Chunk) -> None:
        """Give the idle worker a chunk; it counts as on the worker from now on."""
        self.chunk = chunk
        self.progress_at = None
        if self.budget is not None:
            self.budget = max(0, self.budget - chunk.count)
        self._push(frame(chunk.payload))
        self._chunk_end = self._queued

    def stop(self) -> None:
        """Ask the worker to exit once it is done with its chunk."""
        if not self.stopping:
            self.stopping = True
            self._push(frame(b""))

    def kill(self, timed_out: bool = False) -> None:
        """Kill the worker now (its chunk ran too long, or nobody wants its results)."""
        self.stopping = True
        self.timed_out = self.timed_out or timed_out
        self.process.kill()

    def deadline(self) -> float | None:
        """When the running task has run longer than its call's per-task timeout."""
        chunk, since = self.chunk, self.progress_at
        if chunk is None or since is None or self.timed_out or not self.ready:
            return None
        limit = chunk.job.spec.task_timeout
        return None if limit is None else since + limit

    def took_chunk(self) -> bool:
        """Whether the worker read all of its chunk, so it may have started it."""
        import termios  # noqa: PLC0415 (needed only once a worker has died)

        try:
            raw = fcntl.ioctl(self._tasks_read.fileno(), termios.FIONREAD, bytes(4))
        except OSError:
            return True  # cannot tell: assume it did
        unread = int.from_bytes(raw, sys.byteorder)
        return self._written - unread >= self._chunk_end

    def _push(self, data: bytes) -> None:
        self._unsent.append(memoryview(data))
        self._queued += len(data)
        self.flush()

    def flush(self) -> None:
        """Write what the task pipe takes now."""
        fd = self.tasks.fileno()
        unsent = self._unsent
        try:
            while unsent:
                written = os.write(fd, unsent[0])
                self._written += written
                if written < len(unsent[0]):
                    unsent[0] = unsent[0][written:]
                    break
                unsent.popleft()
        except BlockingIOError:
            pass
        except OSError:  # the pipe is broken; the worker's sentinel will say how
            unsent.clear()
            self.stopping = True
        if self.chunk is not None and self.progress_at is None and self._written >= self._chunk_end:
            self.progress_at = time.monotonic()

    def read_answers(self) -> list[bytes]:
        """The whole answers that arrived, without waiting for more.

        Raises:
            EOFError: the worker's end is closed (it exited); what it sent before is
                returned by the calls before this one.
        """
        fd = self.results.fileno()
        inbound = self._inbound
        while True:
            try:
                data = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                break
            if not data:
                if inbound:
                    inbound.clear()  # a worker that died in the middle of an answer
                raise EOFError
            inbound += data
            if len(data) < _READ_SIZE:
                break
        answers: list[bytes] = []
        start = 0
        while True:
            frame_end, body = _frame_at(inbound, start)
            if frame_end < 0:
                break
            answers.append(bytes(inbound[body:frame_end]))
            start = frame_end
        del inbound[:start]
        return answers

    def close(self) -> None:
        """Close the parent's ends of the pipes."""
        self._unsent.clear()
        self.tasks.close()
        self._tasks_read.close()
        self.results.close()


def _frame_at(buffer: bytearray, start: int) -> tuple[int, int]:
    """Where the frame at ``start`` ends and its body begins, or ``(-1, -1)`` if not all in."""
    if len(buffer) - start < _SHORT.size:
        return -1, -1
    (size,) = _SHORT.unpack_from(buffer, start)
    body = start + _SHORT.size
    if size == -1:
        if len(buffer) - body < _LONG.size:
            return -1, -1
        (size,) = _LONG.unpack_from(buffer, body)
        body += _LONG.size
    end = body + size
    return (end, body) if len(buffer) >= end else (-1, -1)


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
            tasks_r.close()
            results_r.close()
            raise
        finally:
            results_w.close()
    return WorkerHandle(process, tasks_w, tasks_r, results_r, budget)


def stop_workers(workers: list[WorkerHandle], grace: float) -> None:
    """Stop and reap every worker: those still busy get SIGTERM, then SIGKILL after ``grace``.

    Workers already told to stop with nothing on them get five times as long
    to exit by themselves first.
    """
    graceful = all(w.stopping and w.chunk is None for w in workers)
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
