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
import struct
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import final

from ._pool_jobs import Job
from ._pool_process import start_process, starting_processes
from ._pool_worker import worker_main

__all__ = ["Chunk", "WorkerHandle", "frame", "start_worker"]

_SHORT = struct.Struct("!i")
_LONG = struct.Struct("!Q")


def frame(payload: bytes) -> bytes:
    """``payload`` with the length header ``Connection.recv_bytes`` expects."""
    size = len(payload)
    if size > 0x7FFFFFFF:
        return _SHORT.pack(-1) + _LONG.pack(size) + payload
    return _SHORT.pack(size) + payload


@final
class Chunk:
    """Inputs ``start .. start + count - 1`` of a job, pickled and ready to send."""

    __slots__ = ("count", "job", "payload", "start")

    def __init__(self, job: Job, start: int, count: int, payload: bytes) -> None:
        self.job, self.start, self.count, self.payload = job, start, count, payload


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
        self.process, self.tasks, self.results = process, tasks, results
        self.budget = budget
        self.ready = False
        self.stopping = False
        self.results_open = True
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
