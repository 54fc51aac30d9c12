"""``Pool``: a typed process pool that survives its workers.

The names follow ``multiprocessing.pool.Pool``; what differs is that every
call is typed, that a dead worker fails the calls it was running with
``WorkerCrashed`` instead of hanging them, that ``imap`` reads its input
lazily, and that ``stream`` connects workers to channels.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterable, Mapping
from multiprocessing.context import BaseContext
from typing import TYPE_CHECKING, ParamSpec, TypeVar, TypeVarTuple, cast, final, overload

from .._errors import ConfigError, PoolClosed, SerializationError
from .._timing import deadline_after
from .calls import (
    call_form,
    callbacks,
    check_positive,
    inputs,
    run_batch,
    start_iteration,
    submit_batch,
)
from .dispatcher import Engine
from .life_cycle import PoolLifeCycle, collected
from .processes import leave_if_rerunning_main, resolve_context
from .progress import ProgressCallback
from .remote_errors import describe, dumps
from .results import AsyncResult, ResultIterator
from .worker_loop import APPLY, CALL, STAR

if TYPE_CHECKING:
    from concurrent.futures import Future

    from .._protocols import Receiver, Sender
    from .stream import StreamRun

__all__ = ["AsyncResult", "Pool", "ProgressCallback", "ResultIterator"]

# Invariant: an input type, passed to the function.
T = TypeVar("T")
# Invariant: the function's result type, returned to the caller.
R = TypeVar("R")
# The parameters of a function given to apply / apply_async.
P = ParamSpec("P")
# The parameter types of a function given to starmap, one per tuple element.
Ts = TypeVarTuple("Ts")


@final
class Pool(PoolLifeCycle):
    """A pool of worker processes that run your functions, typed end to end.

    Use it as a context manager. Leaving the block normally waits for the work
    already submitted (an ``imap`` still reading its input stops after what it
    has read) and stops the workers; leaving it by an exception, Ctrl-C
    included, terminates them. Either way no worker process is left behind.

    Failures are precise:

    * an exception in your function is raised in the caller with its original
      type, the worker's traceback attached as its ``__cause__``;
    * a worker that dies (killed, ``os._exit``, a crash in C code) fails only
      the task it was running, with ``WorkerCrashed`` (pid and exit code),
      as soon as the parent sees it exit; work it had not yet read goes to
      another worker, and the pool starts a new worker and goes on;
    * a task that runs longer than its ``task_timeout`` fails with
      ``TaskTimeout`` (a ``ChannelTimeout``); its worker is killed and replaced;
    * an argument or result that cannot be pickled or unpickled, or an
      exception that cannot be rebuilt, fails its own task with
      ``SerializationError``; the pool goes on;
    * an initializer that raises breaks the pool: the first call raises
      ``PoolBroken`` (a ``ChannelBroken``) whose cause is the initializer's
      exception, and no more workers are started;
    * a main module that starts a pool when it is imported, without the
      ``if __name__ == "__main__":`` guard, breaks the pool under spawn and
      forkserver (each new worker imports it again): the first call raises
      ``PoolBroken`` that says so, and each worker writes one line;
    * a call on a closed or terminated pool raises ``PoolClosed`` (a
      ``ChannelClosed``).

    Workers ignore SIGINT: on Ctrl-C only the caller gets ``KeyboardInterrupt``
    and the pool terminates its workers.

    Two kinds of timeout. ``timeout=`` bounds the wait of one call (the whole
    ``map``, each result of ``imap``, a ``get``); when it passes, the caller
    gets ``ChannelTimeout`` and a ``map``/``starmap`` gives up: its tasks not
    started are dropped and the workers running its tasks are replaced, so
    nothing of it lingers. ``task_timeout=`` bounds each task, wherever it
    is waited for: a task that runs longer fails with ``TaskTimeout`` and
    its worker is replaced; the call goes on as for any failing task.

    Each worker holds one chunk at a time: no work waits behind a running
    task while another worker is idle.

    Code written for ``multiprocessing.Pool`` runs as it is: ``processes=``,
    ``apply(fn, args=..., kwds=...)``, ``callback=`` and ``error_callback=``.
    Code written for an executor finds ``submit`` and ``shutdown``; where a
    real ``concurrent.futures.Executor`` is needed, use ``PoolExecutor``.

    Args:
        workers: how many worker processes; default ``os.cpu_count()``.
        processes: the stdlib's name for ``workers``.
        context: a start method name (``"fork"``, ``"spawn"``,
            ``"forkserver"``), a ``multiprocessing`` context, or None for the
            default one.
        initializer: called as ``initializer(*initargs)`` in each worker
            when it starts.
        initargs: the arguments of ``initializer``. They reach each worker
            when it starts, so local channels may be among them.
        max_tasks_per_child: replace a worker after it has made this many
            calls (rounded up to a whole chunk for ``imap``, whose chunks are
            cut as it reads, and when a crashed worker's chunks are retried),
            to bound leaks; None keeps workers for the pool's
            lifetime. ``stream`` workers are not counted.
        task_timeout: the longest any task may run, in seconds, unless a call
            sets its own; None for no limit. ``stream`` is not limited. A
            limited call costs a message per task rather than per chunk.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        processes: int | None = None,
        context: str | BaseContext | None = None,
        initializer: Callable[[*Ts], object] | None = None,
        initargs: tuple[*Ts] = (),  # type: ignore[assignment]
        max_tasks_per_child: int | None = None,
        task_timeout: float | None = None,
    ) -> None:
        leave_if_rerunning_main()
        deadline_after(task_timeout)
        if processes is not None:
            if workers is not None:
                raise ConfigError("give workers or processes (its stdlib name), not both")
            workers = processes
        if workers is None:
            workers = os.cpu_count() or 1
        check_positive("workers", workers)
        if max_tasks_per_child is not None:
            check_positive("max_tasks_per_child", max_tasks_per_child)
        ctx = resolve_context(context)
        init = cast("Callable[..., object] | None", initializer)
        args = tuple(cast("tuple[object, ...]", initargs))
        if init is not None and ctx.get_start_method() != "fork":
            try:
                dumps(init)
            except Exception as exc:
                raise SerializationError(
                    f"cannot pickle the initializer {describe(init)} for "
                    f"{ctx.get_start_method()} workers: {exc}"
                ) from exc
        self._ctx = ctx
        self._workers = workers
        self._initializer = init
        self._initargs = args
        self._task_timeout = task_timeout
        self._engine = Engine(ctx, workers, init, args, max_tasks_per_child)
        self._streams: list[StreamRun] = []
        self._finalizer = weakref.finalize(self, collected, self._engine)
        self._finalizer.atexit = False

    @property
    def workers(self) -> int:
        """The number of worker processes."""
        return self._workers

    # -- mapping calls ----------------------------------------------------------

    def map(
        self,
        fn: Callable[[T], R],
        iterable: Iterable[T],
        chunksize: int | None = None,
        *,
        progress: bool = False,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
        task_timeout: float | None = None,
    ) -> list[R]:
        """Return ``[fn(x) for x in iterable]``, computed by the workers, in order.

        Args:
            fn: an importable function of one argument.
            iterable: the inputs, read at once.
            chunksize: inputs per message to a worker; by default about
                ``len / (4 * workers)``, less once calls turn out to be slow,
                so that many cheap calls are not dominated by the IPC cost.
            progress: draw a tqdm progress bar (needs the ``progress`` extra).
            on_progress: called as ``on_progress(done, total)`` as results come.
            timeout: raise ``ChannelTimeout`` if not done after this many
                seconds, and give up: the tasks of this call are stopped.
            task_timeout: fail with ``TaskTimeout`` (and replace the
                worker) when one call of ``fn`` runs longer than this; by
                default the pool's ``task_timeout``.
        """
        spec = self._spec("map", CALL, fn, chunksize, task_timeout)
        results = run_batch(
            self._engine,
            spec,
            inputs(iterable),
            progress=progress,
            on_progress=on_progress,
            timeout=timeout,
        )
        return cast("list[R]", results)

    def starmap(
        self,
        fn: Callable[[*Ts], R],
        iterable: Iterable[tuple[*Ts]],
        chunksize: int | None = None,
        *,
        progress: bool = False,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
        task_timeout: float | None = None,
    ) -> list[R]:
        """Return ``[fn(*args) for args in iterable]``; each tuple is checked against ``fn``.

        The arguments mean what they mean for ``map``.
        """
        spec = self._spec("starmap", STAR, fn, chunksize, task_timeout)
        results = run_batch(
            self._engine,
            spec,
            inputs(iterable),
            progress=progress,
            on_progress=on_progress,
            timeout=timeout,
        )
        return cast("list[R]", results)

    def map_async(
        self,
        fn: Callable[[T], R],
        iterable: Iterable[T],
        chunksize: int | None = None,
        *,
        task_timeout: float | None = None,
        callback: Callable[[list[R]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> AsyncResult[list[R]]:
        """Start ``map`` and return at once; ``get(timeout)`` gives the list.

        ``callback(results)`` or ``error_callback(exception)`` is called as
        for ``apply_async``.
        """
        spec = self._spec("map_async", CALL, fn, chunksize, task_timeout)
        on_done = callbacks(callback, error_callback)
        result = submit_batch(
            self._engine, spec, inputs(iterable), single=False, on_done=on_done, keepalive=self
        )
        return cast("AsyncResult[list[R]]", result)

    def starmap_async(
        self,
        fn: Callable[[*Ts], R],
        iterable: Iterable[tuple[*Ts]],
        chunksize: int | None = None,
        *,
        task_timeout: float | None = None,
        callback: Callable[[list[R]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> AsyncResult[list[R]]:
        """Start ``starmap`` and return at once; ``get(timeout)`` gives the list."""
        spec = self._spec("starmap_async", STAR, fn, chunksize, task_timeout)
        on_done = callbacks(callback, error_callback)
        result = submit_batch(
            self._engine, spec, inputs(iterable), single=False, on_done=on_done, keepalive=self
        )
        return cast("AsyncResult[list[R]]", result)

    def imap(
        self,
        fn: Callable[[T], R],
        iterable: Iterable[T],
        chunksize: int | None = None,
        *,
        progress: bool = False,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
        task_timeout: float | None = None,
        readahead: tuple[int, int] | None = None,
    ) -> ResultIterator[R]:
        """Yield ``fn(x)`` for each input, in order, reading the input lazily.

        The input is read in the caller's thread, as results are taken, and
        only a bounded distance ahead of them, so an endless or huge iterable
        is fine. Each chunk is pickled as it is read: an input that cannot be
        pickled fails at its own index. Dropping or closing the iterator gives
        up the call: its tasks are stopped.

        Args:
            fn: an importable function of one argument.
            iterable: the inputs, read lazily.
            chunksize: inputs per message to a worker; by default sized from
                measured costs, as for ``map``, and small enough that two
                chunks per worker fit the read-ahead.
            progress: draw a tqdm progress bar (needs the ``progress`` extra).
            on_progress: called as ``on_progress(done, total)`` as results come.
            timeout: the longest wait for each result (``ChannelTimeout``;
                the iterator stays usable).
            task_timeout: as for ``map``.
            readahead: ``(items, bytes)``: read at most this many inputs, and
                about this many bytes of them pickled, ahead of the results
                taken; by default ``(8192, 32 MiB)``. At least one chunk is
                read ahead whatever the bound, and no more than a few chunks
                per worker.
        """
        spec = self._spec("imap", CALL, fn, chunksize, task_timeout)
        results = start_iteration(
            self._engine,
            spec,
            iterable,
            progress=progress,
            on_progress=on_progress,
            timeout=timeout,
            readahead=readahead,
            ordered=True,
            keepalive=self,
        )
        return cast("ResultIterator[R]", results)

    def imap_unordered(
        self,
        fn: Callable[[T], R],
        iterable: Iterable[T],
        chunksize: int | None = None,
        *,
        progress: bool = False,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
        task_timeout: float | None = None,
        readahead: tuple[int, int] | None = None,
    ) -> ResultIterator[R]:
        """Like ``imap``, but yield each result as soon as it is ready.

        The arguments, ``readahead`` included, mean what they mean for ``imap``.
        """
        spec = self._spec("imap_unordered", CALL, fn, chunksize, task_timeout)
        results = start_iteration(
            self._engine,
            spec,
            iterable,
            progress=progress,
            on_progress=on_progress,
            timeout=timeout,
            readahead=readahead,
            ordered=False,
            keepalive=self,
        )
        return cast("ResultIterator[R]", results)

    # -- single calls -------------------------------------------------------------
    #
    # Two forms: the typed one, ``apply(fn, *args, **kwargs)``, and the stdlib's,
    # ``apply(fn, args=(...), kwds={...})`` with ``callback=`` and
    # ``error_callback=`` on ``apply_async``. A call that names any of those four
    # keywords is read the stdlib's way, and they never reach ``fn``.

    @overload
    def apply(self, fn: Callable[[*Ts], R], /, *, args: tuple[*Ts]) -> R: ...
    @overload
    def apply(
        self,
        fn: Callable[..., R],
        /,
        *,
        args: tuple[object, ...] = ...,
        kwds: Mapping[str, object],
    ) -> R: ...
    @overload
    def apply(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...
    def apply(self, fn: Callable[..., R], /, *positional: object, **named: object) -> R:
        """Return ``fn(*args, **kwargs)``, computed by a worker.

        The stdlib's ``apply(fn, args=(1, 2), kwds={"c": 3})`` works too.
        """
        return self.apply_async(fn, *positional, **named).get()

    @overload
    def apply_async(
        self,
        fn: Callable[[*Ts], R],
        /,
        *,
        args: tuple[*Ts] = ...,
        callback: Callable[[R], object] | None = ...,
        error_callback: Callable[[BaseException], object] | None = ...,
    ) -> AsyncResult[R]: ...
    @overload
    def apply_async(
        self,
        fn: Callable[[*Ts], R],
        args: tuple[*Ts],
        /,
        *,
        callback: Callable[[R], object],
        error_callback: Callable[[BaseException], object] | None = ...,
    ) -> AsyncResult[R]: ...
    @overload
    def apply_async(
        self,
        fn: Callable[[*Ts], R],
        args: tuple[*Ts],
        /,
        *,
        callback: Callable[[R], object] | None = ...,
        error_callback: Callable[[BaseException], object],
    ) -> AsyncResult[R]: ...
    @overload
    def apply_async(
        self,
        fn: Callable[..., R],
        /,
        *,
        args: tuple[object, ...] = ...,
        kwds: Mapping[str, object],
        callback: Callable[[R], object] | None = ...,
        error_callback: Callable[[BaseException], object] | None = ...,
    ) -> AsyncResult[R]: ...
    @overload
    def apply_async(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> AsyncResult[R]: ...
    def apply_async(
        self, fn: Callable[..., R], /, *positional: object, **named: object
    ) -> AsyncResult[R]:
        """Start ``fn(*args, **kwargs)`` in a worker and return at once.

        The stdlib's form works too: ``apply_async(fn, (1, 2), callback=print)``,
        or ``args=`` and ``kwds=`` by name. ``callback(result)`` or
        ``error_callback(exception)`` is then called in the parent, on a thread
        of the pool's, once the call ends; keep it short. A positional tuple
        without a callback is the typed form's single argument, as type
        checkers see it: write ``args=`` to pass the stdlib's way.
        The pool's ``task_timeout`` applies.
        """
        call_args, call_kwargs, callback, error_callback = call_form(positional, named)
        spec = self._spec("apply", APPLY, fn, None, None)
        result = submit_batch(
            self._engine,
            spec,
            [(call_args, call_kwargs)],
            single=True,
            on_done=callbacks(callback, error_callback),
            keepalive=self,
        )
        return cast("AsyncResult[R]", result)

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        """Start ``fn(*args, **kwargs)`` and return a ``concurrent.futures.Future``.

        As ``Executor.submit`` does, for code written for an executor. The
        future is running from the start: it cannot be cancelled.
        """
        from concurrent.futures import Future  # noqa: PLC0415 (most pools never submit)

        future: Future[R] = Future()
        future.set_running_or_notify_cancel()

        def settle(result: AsyncResult[object]) -> None:
            try:
                value = result.get(0)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(cast("R", value))

        spec = self._spec("submit", APPLY, fn, None, None)
        submit_batch(
            self._engine, spec, [(args, dict(kwargs))], single=True, on_done=settle, keepalive=self
        )
        return future

    # -- channels ---------------------------------------------------------------

    def stream(self, fn: Callable[[T], R], inbox: Receiver[T], outbox: Sender[R]) -> Future[None]:
        """Start workers that send ``fn(item)`` to ``outbox`` for each item of ``inbox``.

        The pool starts ``workers`` processes of its own for the stream (a
        local channel can reach a process only when it starts), each with the
        inbox and a clone of the outbox. When the inbox ends and every worker
        is done, ``outbox`` is closed, which ends it for its readers. Returns
        at once; the future's ``result(timeout)`` waits and re-raises the
        first failure: ``fn``'s exception, or ``WorkerCrashed``. After a
        failure the other workers stop after their current item.
        """
        from .stream import StreamRun, StreamSpec  # noqa: PLC0415 (most pools never stream)

        if not self._engine.running:
            raise PoolClosed("the pool is closed; it takes no new work")
        self._streams[:] = [run for run in self._streams if not run.future.done()]
        spec = StreamSpec(
            cast("Callable[[object], object]", fn),
            cast("Receiver[object]", inbox),
            self._initializer,
            self._initargs,
        )
        run = StreamRun(self._ctx, self._workers, spec, cast("Sender[object]", outbox))
        self._streams.append(run)
        return run.future
