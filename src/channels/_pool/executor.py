"""``PoolExecutor``: a ``Pool`` behind the ``concurrent.futures.Executor`` interface.

Why a class of its own: ``Pool.map(fn, iterable)`` checks the iterable against
``fn`` and returns a list, while ``Executor.map(fn, *iterables)`` takes any
number of iterables and returns an iterator. A subclass must accept every call
its base accepts, so a ``Pool`` that was an ``Executor`` would have to give up
the checks on ``map``. ``Pool`` therefore offers ``submit`` and ``shutdown``
itself, and this executor, built like ``ProcessPoolExecutor``, is the one to
use where an ``Executor`` is expected.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from multiprocessing.context import BaseContext
from typing import ParamSpec, TypeVar, TypeVarTuple, cast, final

from .._errors import ConfigError
from .._timing import deadline_after
from .jobs import DEFAULT_READAHEAD
from .pool import Pool
from .results import ResultIterator

__all__ = ["PoolExecutor"]

# Invariant: the function's result type, returned to the caller.
R = TypeVar("R")
# The parameters of a function given to submit.
P = ParamSpec("P")
# The parameter types of the initializer, one per element of initargs.
Ts = TypeVarTuple("Ts")


@final
class PoolExecutor(Executor):
    """A ``concurrent.futures.Executor`` on a ``channels.Pool``: a drop-in ``ProcessPoolExecutor``.

    The arguments are ``ProcessPoolExecutor``'s; ``mp_context`` also takes a
    start method name. Everything the pool promises holds: a dead worker
    fails its task with ``WorkerCrashed`` and the executor goes on,
    exceptions keep their type and carry the worker's traceback. The typed
    ``Pool`` calls stay at hand through ``pool``.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        mp_context: str | BaseContext | None = None,
        initializer: Callable[[*Ts], object] | None = None,
        initargs: tuple[*Ts] = (),  # type: ignore[assignment]
        *,
        max_tasks_per_child: int | None = None,
    ) -> None:
        self._pool = Pool(
            max_workers,
            context=mp_context,
            initializer=initializer,
            initargs=initargs,
            max_tasks_per_child=max_tasks_per_child,
        )

    @property
    def pool(self) -> Pool:
        """The pool the executor runs on."""
        return self._pool

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        """Start ``fn(*args, **kwargs)``; the future is running from the start."""
        return self._pool.submit(fn, *args, **kwargs)

    def map(
        self,
        fn: Callable[..., R],
        *iterables: Iterable[object],
        timeout: float | None = None,
        chunksize: int | None = None,
        buffersize: int | None = None,
    ) -> Iterator[R]:
        """Yield ``fn(*args)`` for the arguments zipped from ``iterables``, in order.

        As ``Executor.map``: ``timeout`` counts from this call, and the next
        result not ready by then raises ``ChannelTimeout`` (a ``TimeoutError``);
        with ``buffersize`` (as on Python 3.14), at most that many inputs are
        read ahead of the results taken. The inputs are always read lazily,
        within the pool's read-ahead when no ``buffersize`` is given, and
        ``chunksize`` is chosen by the pool unless given.

        Raises:
            ConfigError: ``buffersize`` is not a positive int (a ``ValueError``).
        """
        deadline = deadline_after(timeout)
        readahead = None
        if buffersize is not None:
            if isinstance(buffersize, bool) or not isinstance(buffersize, int) or buffersize < 1:
                raise ConfigError(f"buffersize must be None or a positive int, not {buffersize!r}")
            readahead = (buffersize, DEFAULT_READAHEAD[1])
            chunksize = None if chunksize is None else min(chunksize, buffersize)
        call = cast("Callable[[tuple[object, ...]], R]", functools.partial(_star, fn))
        results = self._pool.imap(
            call, zip(*iterables, strict=False), chunksize, readahead=readahead
        )
        return _until(results, deadline)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no new work; with ``wait``, return once the workers have exited."""
        self._pool.shutdown(wait, cancel_futures=cancel_futures)

    def terminate_workers(self) -> None:
        """Stop every worker now with SIGTERM (SIGKILL a second later) and shut down.

        As ``ProcessPoolExecutor.terminate_workers`` on Python 3.14: tasks not
        finished raise ``PoolClosed``, and the executor takes no more work.
        """
        self._pool.terminate()
        self._pool.join()

    def kill_workers(self) -> None:
        """Stop every worker now with SIGKILL and shut down (``terminate_workers``, harder)."""
        self._pool.terminate(kill=True)
        self._pool.join()

    def __repr__(self) -> str:
        return f"<channels.PoolExecutor on {self._pool!r}>"


def _star(fn: Callable[..., object], args: tuple[object, ...]) -> object:
    """Call ``fn(*args)``: runs in the worker, so it is importable."""
    return fn(*args)


def _until(results: ResultIterator[R], deadline: float | None) -> Iterator[R]:
    """The results, each waited for until ``deadline`` at most."""
    try:
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                yield results.next(left)
            except StopIteration:
                return
    finally:
        results.close()
