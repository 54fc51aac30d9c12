"""The life cycle of a ``Pool``: closing, terminating, joining, the ``with`` block.

``Pool`` inherits it; its calls live in ``pool``.
"""

from __future__ import annotations

import time
import warnings
import weakref
from types import TracebackType
from typing import TYPE_CHECKING, Self

from .._errors import ChannelTimeout, PoolClosed
from .._timing import deadline_after
from .calls import call_spec
from .jobs import CallSpec

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

    from .dispatcher import Engine
    from .stream import StreamRun

__all__ = ["PoolLifeCycle", "collected"]


class PoolLifeCycle:
    """What every ``Pool`` holds, and its life cycle."""

    _ctx: BaseContext
    _workers: int
    _task_timeout: float | None
    _engine: Engine
    _streams: list[StreamRun]
    _finalizer: weakref.finalize[[Engine], object]

    def close(self) -> None:
        """Take no new work; the workers exit once the submitted work is done.

        Tasks of calls that gave up (their ``timeout`` passed, they were
        interrupted, their iterator was dropped) are not waited for: their
        workers are stopped at once.
        """
        self._engine.close()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no new work, as ``Executor.shutdown`` does: ``close()``, and ``join()`` if ``wait``.

        With ``cancel_futures``, calls whose tasks have not started yet fail
        with ``PoolClosed`` instead of running.
        """
        self.close()
        if cancel_futures:
            self._engine.cancel_pending()
        if wait:
            self.join()

    def terminate(self, *, kill: bool = False) -> None:
        """Stop the workers now; unfinished calls raise ``PoolClosed``.

        Workers get SIGTERM, and SIGKILL a second later if still running; with
        ``kill``, SIGKILL at once.
        """
        self._engine.terminate(kill=kill)
        for run in self._streams:
            run.terminate()
        self._finalizer.detach()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the workers to exit, after ``close()`` or ``terminate()``.

        After ``close()`` that is once every task still awaited has ended: a
        task that never ends keeps ``join`` waiting, unless a ``task_timeout``
        stops it, or ``timeout`` here.

        Raises:
            ChannelTimeout: they are still running after ``timeout`` seconds.
        """
        deadline = deadline_after(timeout)
        self._engine.join(timeout)
        for run in self._streams:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not run.join(left):
                raise ChannelTimeout(f"a stream's workers did not exit within {timeout} s")
        self._finalizer.detach()

    def __enter__(self) -> Self:
        if not self._engine.running:
            raise PoolClosed("the pool is closed; a closed pool cannot be entered again")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.terminate()
            return
        try:
            self.close()
            self._engine.cut_inputs()
            self.join()
        except BaseException:
            self.terminate()
            raise

    def _spec(
        self, method: str, kind: int, fn: object, chunksize: int | None, task_timeout: float | None
    ) -> CallSpec:
        return call_spec(
            method,
            kind,
            fn,
            chunksize,
            task_timeout,
            workers=self._workers,
            default_timeout=self._task_timeout,
        )

    def __repr__(self) -> str:
        state = "running" if self._engine.running else "closed"
        return f"<channels.Pool workers={self._workers} {self._ctx.get_start_method()} {state}>"


def collected(engine: Engine) -> None:
    """The pool was garbage collected: let the workers finish their work and exit."""
    if engine.running:
        engine.close()
        warnings.warn(
            "a channels.Pool was garbage collected while running; use it as a context "
            "manager or call close() and join()",
            ResourceWarning,
            stacklevel=1,
        )
