"""The state of one pool call, shared by the caller's thread and the dispatcher.

A job holds the inputs not yet cut into chunks, the results that came back,
and the first error. Every method is called with the pool's lock held; the
job's condition is built on that lock, so a caller waiting for results wakes
when the dispatcher delivers them.

A job stops at its first error: ``map`` raises it at once, ``imap`` after
yielding every result before it, and the items after it are not run.

A ``map`` has all its inputs up front; the dispatcher cuts and pickles a chunk
when a worker is free for it. An ``imap`` reads its input in the caller's
thread and pickles each chunk there as it reads it, so the bytes it holds are
known and bounded (``readahead``), and an input that cannot be pickled fails
in the caller, at its own index.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import final

from .._errors import SerializationError
from .._timing import CHUNK_MIN_SECONDS, CHUNK_SECONDS
from .remote_errors import describe, dumps

__all__ = ["DEFAULT_READAHEAD", "BatchJob", "CallSpec", "Chunk", "IterJob", "Job", "pack"]

# ... and whose items pickle to about this many bytes, with at most this many items.
_TARGET_BYTES = 1 << 20
_MAX_CHUNK = 10_000
# Chunk size while nothing is known about the cost of a call yet.
_PROBE = 1
# What an imap reads ahead of the results taken, by default: (inputs, bytes of pickled inputs).
DEFAULT_READAHEAD = (8192, 32 << 20)


@final
class CallSpec:
    """What every chunk of a call runs: the pickled function and how to pass items."""

    __slots__ = ("chunksize", "fn_bytes", "kind", "name", "task_timeout", "workers")

    def __init__(
        self,
        fn_bytes: bytes,
        kind: int,
        name: str,
        *,
        chunksize: int | None,
        workers: int,
        task_timeout: float | None = None,
    ) -> None:
        self.fn_bytes: bytes = fn_bytes
        self.kind: int = kind
        self.name: str = name
        self.chunksize: int | None = chunksize
        self.workers: int = workers
        self.task_timeout: float | None = task_timeout


def pack(
    spec: CallSpec, start: int, items: Sequence[object]
) -> tuple[bytes | None, int, SerializationError | None]:
    """Pickle a chunk: (payload, how many items it holds, the error of the next one).

    An input that cannot be pickled ends the chunk: the items before it are
    sent, and the error is for the caller to charge to that input.
    """
    timed = spec.task_timeout is not None
    try:
        return dumps((spec.fn_bytes, spec.kind, items, timed)), len(items), None
    except BaseException:  # SystemExit from a hostile __reduce__ included
        pass
    for offset, item in enumerate(items):
        try:
            dumps(item)
        except BaseException as exc:
            error = SerializationError(
                f"cannot pickle the input {describe(item)} (item {start + offset}) "
                f"of {spec.name}: {exc}"
            )
            error.__cause__ = exc
            payload = dumps((spec.fn_bytes, spec.kind, items[:offset], timed)) if offset else None
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


class Job:
    """Inputs, results and the first error of one call."""

    def __init__(self, cond: threading.Condition, spec: CallSpec, total: int | None) -> None:
        self.cond: threading.Condition = cond
        self.spec: CallSpec = spec
        self.total: int | None = total
        # Inputs not yet cut into chunks, as (first index, items); the head
        # segment is cut from ``_position`` on.
        self._segments: deque[tuple[int, Sequence[object]]] = deque()
        self._position = 0
        self._cut = 0
        self.read: int = 0
        self.input_done: bool = False
        self.delivered: int = 0
        self.error: BaseException | None = None
        self.error_index: int | None = None
        self.finished: bool = False
        # The caller gave up (timed out, interrupted, dropped the iterator).
        self.abandoned: bool = False
        self.queued: bool = False
        self.on_finished: Callable[[Job], None] = _ignore
        # Run once the job has finished, on the pool's callback thread (``notifier``);
        # ``notified`` once it has run.
        self.notify: Callable[[], None] | None = None
        self.notifier: threading.Thread | None = None
        self.notified: bool = False
        self._item_seconds: float | None = None
        self._item_bytes: float | None = None

    # -- input side ---------------------------------------------------------

    def add(self, items: Sequence[object]) -> None:
        """Append inputs; their indices follow the ones added before."""
        if items and not self.finished:
            self._segments.append((self.read, items))
        self.read += len(items)

    def end_input(self) -> None:
        """No more inputs will be added."""
        self.input_done = True
        self._check_finished()

    @property
    def started(self) -> bool:
        """Whether any input was cut into a chunk for a worker."""
        return self._cut > 0

    def has_pending(self) -> bool:
        """Whether inputs wait to be cut into chunks."""
        return bool(self._segments)

    def take(self, limit: int) -> tuple[int, Sequence[object]] | None:
        """Cut the next chunk of at most ``limit`` inputs: (first index, items).

        A slice of the inputs, so a ``range`` travels as a range, not its numbers.
        """
        if not self._segments:
            return None
        start = self._segments[0][0] + self._position
        limit = max(1, limit)
        parts: list[Sequence[object]] = []
        size = 0
        while self._segments and size < limit:
            _, items = self._segments[0]
            begin = self._position
            end = min(len(items), begin + limit - size)
            parts.append(items if begin == 0 and end == len(items) else items[begin:end])
            size += end - begin
            if end == len(items):
                self._segments.popleft()
                self._position = 0
            else:
                self._position = end
        self._cut += size
        if len(parts) == 1:
            return start, parts[0]
        return start, [item for part in parts for item in part]

    def chunk_size(self) -> int:
        """The explicit chunksize, or one sized from the input length and measured costs.

        Without a chunksize: at most a quarter of the input per worker, and
        less as the input runs out (half of what is left per worker), so that
        the workers finish together, though not below ``CHUNK_MIN_SECONDS`` of
        work, which the round trip would outweigh; and once a few calls were
        timed, about ``CHUNK_SECONDS`` of work per chunk, so that a chunk of
        slow calls does not keep one worker busy while the others wait.
        """
        if self.spec.chunksize is not None:
            return self.spec.chunksize
        workers = self.spec.workers
        size = _MAX_CHUNK
        if self.total is not None:
            left = self.total - self._cut
            shrunk = math.ceil(left / (2 * workers))
            if self._item_seconds is not None:
                # Not below what outweighs the round trip to a worker and back.
                shrunk = max(shrunk, int(CHUNK_MIN_SECONDS / max(self._item_seconds, 1e-9)))
            size = min(size, math.ceil(self.total / (4 * workers)), shrunk)
            size = max(1, size)
        if self._item_seconds is None:
            return min(size, _PROBE)
        if self._item_seconds > 0:
            size = min(size, max(1, int(CHUNK_SECONDS / self._item_seconds)))
        if self._item_bytes:
            size = min(size, max(1, int(_TARGET_BYTES / self._item_bytes)))
        return size

    def measured(self, count: int, seconds: float) -> None:
        """Record how long a chunk of ``count`` calls took in a worker."""
        if count:
            per_item = seconds / count
            old = self._item_seconds
            self._item_seconds = per_item if old is None else (old + per_item) / 2

    def sent(self, count: int, nbytes: int) -> None:
        """Record the pickled size of a chunk of ``count`` inputs."""
        if count:
            per_item = nbytes / count
            old = self._item_bytes
            self._item_bytes = per_item if old is None else (old + per_item) / 2

    def wants(self, start: int) -> bool:
        """Whether a chunk starting at ``start`` is still worth running."""
        if self.error is None:
            return not self.finished
        return self.error_index is not None and start < self.error_index

    # -- output side --------------------------------------------------------

    def deliver(self, start: int, values: list[object]) -> None:
        """Store results for the inputs ``start .. start + len(values) - 1``."""
        if values:
            self._store(start, values)
            self.delivered += len(values)
            self._check_finished()
            if self._wakes_caller(start):
                self.cond.notify_all()

    def fail(self, index: int, exc: BaseException) -> None:
        """Record that the input at ``index`` failed with ``exc`` (the earliest one wins)."""
        if self.error_index is None or index < self.error_index:
            self.error, self.error_index = exc, index
        self._finish()

    def _store(self, start: int, values: list[object]) -> None:
        raise NotImplementedError

    def _check_finished(self) -> None:
        if self.input_done and self.delivered >= self.read:
            self._finish()

    def settled(self) -> bool:
        """Finished, and its callback has run: the stdlib's ``ready()``, so what a callback
        did is there to see once ``get()`` returns. Call it holding ``cond``.

        On the callback thread, or once that thread is gone, finished is enough: a
        callback that waits for a result must not wait for itself.
        """
        if not self.finished or self.notified or self.notify is None:
            return self.finished
        notifier = self.notifier
        return notifier is None or notifier is threading.current_thread() or not notifier.is_alive()

    def _finish(self) -> None:
        if not self.finished:
            self.finished = True
            self._segments.clear()
            self._position = 0
            self._drop_pending()
            self.on_finished(self)
        self.cond.notify_all()

    def _drop_pending(self) -> None:
        pass

    def _wakes_caller(self, start: int) -> bool:
        """Whether results delivered at ``start`` are what a waiting caller waits for.

        Waking a caller for nothing costs a thread switch per chunk.
        """
        raise NotImplementedError

    def _count_cut(self, count: int, *, read: bool) -> None:
        """Count ``count`` inputs cut into a chunk (and read, if they were read just now)."""
        self._cut += count
        if read:
            self.read += count


def _ignore(job: Job) -> None:
    pass


@final
class BatchJob(Job):
    """A call whose inputs are all known up front: ``map``, ``starmap``, ``apply_async``."""

    def __init__(self, cond: threading.Condition, spec: CallSpec, items: Sequence[object]) -> None:
        super().__init__(cond, spec, len(items))
        self.results: list[object] = [None] * len(items)
        with cond:
            self.add(items)
            self.end_input()

    def _store(self, start: int, values: list[object]) -> None:
        if self.error is None:
            self.results[start : start + len(values)] = values

    def _wakes_caller(self, start: int) -> bool:
        return False  # its callers wait for the end, which wakes them anyway


@final
class IterJob(Job):
    """A lazily fed call whose results are taken one at a time: ``imap``, ``imap_unordered``.

    The caller reads inputs a chunk at a time, pickles each chunk and adds it
    here; the dispatcher hands the chunks out as they are. How far the caller
    reads ahead of the results it took is bounded in inputs and in bytes of
    pickled inputs (``readahead``); at least one chunk is always allowed.
    """

    def __init__(
        self,
        cond: threading.Condition,
        spec: CallSpec,
        total: int | None,
        *,
        ordered: bool,
        readahead: tuple[int, int] = DEFAULT_READAHEAD,
    ) -> None:
        super().__init__(cond, spec, total)
        self.ordered: bool = ordered
        self.max_items: int = readahead[0]
        self.max_bytes: int = readahead[1]
        self.input_error: BaseException | None = None
        self._chunks: deque[Chunk] = deque()
        self._handed_out = 0
        # The chunks read whose results are not all taken: (end index, bytes).
        self._held: deque[tuple[int, int]] = deque()
        self.held_bytes: int = 0
        self._by_start: dict[int, list[object]] = {}
        self._arrived: deque[list[object]] = deque()
        self.taken: int = 0

    @property
    def started(self) -> bool:
        """Whether any chunk went to a worker."""
        return self._handed_out > 0

    def has_pending(self) -> bool:
        """Whether read chunks wait for a worker."""
        return bool(self._chunks)

    def chunk_size(self) -> int:
        """As for any job, and small enough that two chunks per worker fit the read-ahead."""
        size = super().chunk_size()
        if self.spec.chunksize is not None:
            return size
        share = 2 * self.spec.workers
        size = min(size, max(1, self.max_items // share))
        if self._item_bytes:
            size = min(size, max(1, int(self.max_bytes / share / self._item_bytes)))
        return size

    def wanted(self) -> int:
        """How many inputs the caller should read now: a chunk's worth, or 0 to wait.

        The caller may read while fewer than ``max_items`` inputs (and about
        ``max_bytes`` of them, pickled) wait for their results to be taken,
        and no further than a few chunks per worker.
        """
        if self.input_done or self.finished:
            return 0
        size = self.chunk_size()
        ahead = self.read - self.taken
        limit = max(size, min(self.max_items, 4 * self.spec.workers * max(2, size)))
        room = limit - ahead
        if ahead and self._item_bytes:
            room = min(room, int((self.max_bytes - self.held_bytes) / self._item_bytes))
        return size if room >= size else 0

    def refill_due(self) -> bool:
        """Whether the caller should read more input now."""
        return self.wanted() > 0

    def add_chunk(self, chunk: Chunk) -> None:
        """Add a chunk the caller read and pickled; its indices follow the ones added before."""
        nbytes = len(chunk.payload)
        if not self.finished:
            self._chunks.append(chunk)
            self._held.append((chunk.start + chunk.count, nbytes))
            self.held_bytes += nbytes
        self._count_cut(chunk.count, read=True)
        self.sent(chunk.count, nbytes)

    def take_chunk(self) -> Chunk | None:
        """The next chunk for a worker, if one waits."""
        if not self._chunks:
            return None
        chunk = self._chunks.popleft()
        self._handed_out += chunk.count
        return chunk

    def _store(self, start: int, values: list[object]) -> None:
        if self.ordered:
            self._by_start[start] = values
        else:
            self._arrived.append(values)

    def _wakes_caller(self, start: int) -> bool:
        return not self.ordered or start == self.taken  # the run the caller waits for

    def _drop_pending(self) -> None:
        # Chunks before the failing input still run: imap yields their results first.
        self._chunks = deque(chunk for chunk in self._chunks if self.wants(chunk.start))

    def pop_chunk(self) -> list[object] | None:
        """Take the next run of results if it is here (the caller hands them out one by one)."""
        if self.ordered:
            chunk = self._by_start.pop(self.taken, None)
        else:
            chunk = self._arrived.popleft() if self._arrived else None
        if chunk is not None:
            self.taken += len(chunk)
            # Unordered runs are charged to the oldest chunks: exact when inputs are alike.
            while self._held and self._held[0][0] <= self.taken:
                self.held_bytes -= self._held.popleft()[1]
        return chunk

    def failed_here(self) -> BaseException | None:
        """The error the caller must get now that no result is ready, if any."""
        if self.error is None:
            return None
        if self.ordered and self.error_index is not None and self.taken < self.error_index:
            return None
        return self.error

    def exhausted(self) -> bool:
        """Whether every input was read and its result taken."""
        return self.input_done and self.taken >= self.read
