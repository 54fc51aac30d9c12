"""The loop a pool worker process runs, and the messages it exchanges with the parent.

Each worker has its own pair of pipes. The parent sends a chunk as one
message, ``(function bytes, kind, items, timed)``, and an empty message to
ask the worker to exit. The worker answers in order::

    (READY,)                          once, after the initializer ran
    (INIT_FAILED, packed exception)   instead, if the initializer raised
    (PART, values, seconds)           only for a ``timed`` chunk (a call with
                                      a per-task timeout): once it is loaded,
                                      with no values, then the value of each
                                      item but the last, as soon as it is done
    (DONE, values, error, seconds)    once per chunk: the results of the rest
                                      of the chunk, or of a prefix of it and
                                      (offset, packed exception) for the item
                                      at that offset that failed and ended it

The values travel pickled apart, inside the answer, so that the parent reads
an answer's tag and error first and can send the worker its next chunk before
it unpickles the results.

So for a timed chunk the parent knows when each item started, and which one
ran too long. Answers carry no ids: a worker handles one chunk at a time, so
the parent knows which chunk an answer is for.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from itertools import starmap
from multiprocessing.connection import Connection
from typing import cast

from .._errors import SerializationError
from .._timing import ORPHAN_CHECK
from .processes import ignore_sigint
from .remote_errors import describe, dumps, loads, pack_exception

__all__ = ["APPLY", "CALL", "DONE", "INIT_FAILED", "PART", "READY", "STAR", "worker_main"]

# Answer tags.
READY = 0
INIT_FAILED = 1
DONE = 2
PART = 3

# How a chunk's items are passed to the function.
CALL = 0  # fn(item)
STAR = 1  # fn(*item)
APPLY = 2  # fn(*args, **kwargs) for item == (args, kwargs)

Error = tuple[int, bytes]


def worker_main(
    tasks: Connection,
    results: Connection,
    initializer: Callable[..., object] | None,
    initargs: tuple[object, ...],
) -> None:
    """Run the initializer, then chunks from ``tasks`` until told to stop or orphaned."""
    ignore_sigint()
    if initializer is not None:
        try:
            initializer(*initargs)
        except BaseException as exc:
            results.send_bytes(dumps((INIT_FAILED, pack_exception(exc))))
            return
    results.send_bytes(dumps((READY,)))
    fn_bytes = b""
    fn: Callable[..., object] = _unset
    parent = os.getppid()
    while True:
        try:
            # Under fork the other workers hold this pipe's write end too, so the end of
            # file alone does not say that the parent is gone: its pid does.
            while not tasks.poll(ORPHAN_CHECK):
                if os.getppid() != parent:
                    return
            message = tasks.recv_bytes()
        except (EOFError, OSError):
            return  # the parent is gone
        if not message:
            return
        try:
            task = cast("tuple[bytes, int, list[object], bool]", loads(message))
            new_fn_bytes, kind, items, timed = task
            del task
            if new_fn_bytes != fn_bytes:
                fn = cast("Callable[..., object]", loads(new_fn_bytes))
                fn_bytes = new_fn_bytes
        except BaseException as exc:
            error = SerializationError(
                f"the worker could not unpickle a task's function or arguments: {exc}"
            )
            error.__cause__ = exc
            nothing: list[object] = []
            results.send_bytes(dumps((DONE, dumps(nothing), (0, pack_exception(error)), 0.0)))
            continue
        del message
        start = time.perf_counter()
        if timed:
            _run_timed(fn, kind, items, results)
            del items
        else:
            values, failure = _run_chunk(fn, kind, items)
            del items
            _send(results, DONE, values, failure, time.perf_counter() - start)
            del values


def _unset(*args: object, **kwargs: object) -> object:
    raise RuntimeError("no function received yet")


def _run_chunk(
    fn: Callable[..., object], kind: int, items: list[object]
) -> tuple[list[object], Error | None]:
    """Call ``fn`` on each item, stopping at the first exception.

    ``list.extend`` keeps what it took before an exception, so the results
    before a failing item survive and the failing index is their count.
    """
    values: list[object] = []
    try:
        if kind == CALL:
            values.extend(map(fn, items))
        elif kind == STAR:
            values.extend(starmap(fn, cast("list[tuple[object, ...]]", items)))
        else:
            for item in items:
                args, kwargs = cast("tuple[tuple[object, ...], dict[str, object]]", item)
                values.append(fn(*args, **kwargs))
    except BaseException as exc:
        return values, (len(values), pack_exception(exc))
    return values, None


def _run_timed(
    fn: Callable[..., object], kind: int, items: list[object], results: Connection
) -> None:
    """Run a chunk item by item, sending each result as soon as it is ready."""
    values: list[object] = []
    start = time.perf_counter()
    for item in items:
        if not _send(results, PART, values, None, time.perf_counter() - start):
            return  # a result could not be pickled: that ended the chunk
        start = time.perf_counter()
        values, failure = _run_chunk(fn, kind, [item])
        if failure is not None:
            break
    else:
        failure = None
    _send(results, DONE, values, failure, time.perf_counter() - start)


def _send(
    results: Connection, tag: int, values: list[object], failure: Error | None, seconds: float
) -> bool:
    """Send an answer; a result that cannot be pickled fails at its own index.

    Returns False when that ended the chunk (a ``DONE`` went instead of a ``PART``).
    """
    try:
        packed = dumps(values)
    except BaseException:
        pass
    else:
        message = (DONE, packed, failure, seconds) if tag == DONE else (PART, packed, seconds)
        results.send_bytes(dumps(message))
        return True
    for index, value in enumerate(values):
        try:
            dumps(value)
        except BaseException as exc:
            error = SerializationError(f"the result {describe(value)} cannot be pickled: {exc}")
            error.__cause__ = exc
            values, failure = values[:index], (index, pack_exception(error))
            break
    else:
        values, failure = [], (0, pack_exception(SerializationError("cannot pickle results")))
    results.send_bytes(dumps((DONE, dumps(values), failure, seconds)))
    return False
