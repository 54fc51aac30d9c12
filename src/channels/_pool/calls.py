"""How a pool call becomes a job: its arguments read and checked, its function pickled.

``Pool``'s methods say what each call means; these functions do what they
share: check the arguments (the stdlib's forms included), pickle the function
once per call, and submit the job and wait for it or hand back its result.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from typing import TypeVar, cast

from .._errors import ConfigError, SerializationError
from .._timing import deadline_after
from .dispatcher import Engine
from .jobs import DEFAULT_READAHEAD, BatchJob, CallSpec, IterJob
from .progress import ProgressCallback, make_progress
from .remote_errors import describe, dumps
from .results import AsyncResult, ResultIterator, wait_batch

__all__ = [
    "call_form",
    "call_spec",
    "callbacks",
    "check_positive",
    "inputs",
    "readahead_bound",
    "run_batch",
    "start_iteration",
    "submit_batch",
]

# Invariant: the function's result type, returned to the caller.
R = TypeVar("R")


def call_spec(
    method: str,
    kind: int,
    fn: object,
    chunksize: int | None,
    task_timeout: float | None,
    *,
    workers: int,
    default_timeout: float | None,
) -> CallSpec:
    """Check a call's own arguments and pickle its function: what every chunk of it runs."""
    if chunksize is not None:
        check_positive("chunksize", chunksize)
    deadline_after(task_timeout)
    if task_timeout is None:
        task_timeout = default_timeout
    name = f"{method}({getattr(fn, '__qualname__', None) or describe(fn)})"
    try:
        fn_bytes = dumps(fn)
    except (Exception, SystemExit) as exc:
        raise SerializationError(
            f"cannot pickle the function of {name}: {exc}; pool functions must be "
            "importable by the workers (defined at module level, not a lambda)"
        ) from exc
    return CallSpec(
        fn_bytes,
        kind,
        name,
        chunksize=chunksize,
        workers=workers,
        task_timeout=task_timeout,
    )


def submit_batch(
    engine: Engine,
    spec: CallSpec,
    items: Sequence[object],
    *,
    single: bool,
    on_done: Callable[[AsyncResult[object]], None] | None,
    keepalive: object,
) -> AsyncResult[object]:
    """Start a call whose inputs are all known, and return its result at once."""
    job = BatchJob(engine.condition(), spec, items)
    result: AsyncResult[object] = AsyncResult(job, single, keepalive=keepalive)
    if on_done is not None:
        job.notify = functools.partial(on_done, result)
    engine.submit(job)
    return result


def run_batch(
    engine: Engine,
    spec: CallSpec,
    items: Sequence[object],
    *,
    progress: bool,
    on_progress: ProgressCallback | None,
    timeout: float | None,
) -> list[object]:
    """Run a call whose inputs are all known, and wait for its results."""
    deadline_after(timeout)  # a bad timeout is refused before any work starts
    reporter = make_progress(progress, on_progress, spec.name, len(items))
    job = BatchJob(engine.condition(), spec, items)
    engine.submit(job)
    return wait_batch(engine, job, timeout, reporter)


def start_iteration(
    engine: Engine,
    spec: CallSpec,
    iterable: Iterable[object],
    *,
    progress: bool,
    on_progress: ProgressCallback | None,
    timeout: float | None,
    readahead: tuple[int, int] | None,
    ordered: bool,
    keepalive: object,
) -> ResultIterator[object]:
    """Start an ``imap``: its input is read by the iterator returned, as results are taken."""
    deadline_after(timeout)  # a bad timeout is refused before any work starts
    bound = readahead_bound(readahead)
    total = len(iterable) if isinstance(iterable, Sized) else None
    # Lists, tuples and ranges are sliced, as map slices them; anything else is iterated.
    source = iterable if isinstance(iterable, list | tuple | range) else iter(iterable)
    reporter = make_progress(progress, on_progress, spec.name, total)
    job = IterJob(engine.condition(), spec, total, ordered=ordered, readahead=bound)
    engine.submit(job)
    return ResultIterator(
        engine, job, source, progress=reporter, timeout=timeout, keepalive=keepalive
    )


def inputs(iterable: Iterable[object]) -> Sequence[object]:
    """The inputs of a call that reads them at once: lists, tuples and ranges as they are."""
    if isinstance(iterable, list | tuple | range):
        return iterable
    return list(iterable)


_STDLIB_KEYWORDS = ("args", "kwds", "callback", "error_callback")


def call_form(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> tuple[
    tuple[object, ...],
    dict[str, object],
    Callable[[object], object] | None,
    Callable[[BaseException], object] | None,
]:
    """Read ``apply``'s arguments: (args, kwargs, callback, error_callback) for ``fn``."""
    if not any(name in kwargs for name in _STDLIB_KEYWORDS):
        return args, kwargs, None, None
    if len(args) > 2:
        raise ConfigError("the stdlib form takes at most args and kwds by position")
    given = dict(zip(("args", "kwds"), args, strict=False))
    for name in given:
        if name in kwargs:
            raise ConfigError(f"{name} given both by position and by name")
    kwargs = {**given, **kwargs}
    unknown = sorted(set(kwargs) - set(_STDLIB_KEYWORDS))
    if unknown:
        raise ConfigError(
            f"unexpected keyword arguments {unknown} beside args=, kwds=, callback= or "
            "error_callback=; pass the function's own keywords in kwds="
        )
    call_args = kwargs.get("args", ())
    call_kwargs = kwargs.get("kwds", {})
    if not isinstance(call_args, tuple | list):
        raise ConfigError(f"args must be a tuple, not {type(call_args).__name__}")
    if not isinstance(call_kwargs, Mapping):
        raise ConfigError(f"kwds must be a mapping, not {type(call_kwargs).__name__}")
    callback = kwargs.get("callback")
    error_callback = kwargs.get("error_callback")
    for name, value in (("callback", callback), ("error_callback", error_callback)):
        if value is not None and not callable(value):
            raise ConfigError(f"{name} must be callable, not {value!r}")
    return (
        tuple(cast("Iterable[object]", call_args)),
        dict(cast("Mapping[str, object]", call_kwargs)),
        cast("Callable[[object], object] | None", callback),
        cast("Callable[[BaseException], object] | None", error_callback),
    )


def callbacks(
    callback: Callable[[R], object] | None,
    error_callback: Callable[[BaseException], object] | None,
) -> Callable[[AsyncResult[object]], None] | None:
    """What to run once a call ends: its callback with the result, or its error callback."""
    if callback is None and error_callback is None:
        return None

    def on_done(result: AsyncResult[object]) -> None:
        try:
            value = result.get(0)
        except BaseException as exc:
            if error_callback is not None:
                error_callback(exc)
            return
        if callback is not None:
            callback(cast("R", value))

    return on_done


def readahead_bound(value: object) -> tuple[int, int]:
    """The ``readahead=`` of an ``imap``: ``(items, bytes)``, both positive."""
    if value is None:
        return DEFAULT_READAHEAD
    if not isinstance(value, tuple) or len(cast("tuple[object, ...]", value)) != 2:
        raise ConfigError(f"readahead must be a pair (items, bytes), not {value!r}")
    items, nbytes = cast("tuple[object, object]", value)
    check_positive("readahead's items", items)
    check_positive("readahead's bytes", nbytes)
    return cast("tuple[int, int]", value)


def check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive int, not {value!r}")
