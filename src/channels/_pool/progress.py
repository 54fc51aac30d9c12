"""Progress reports for the mapping calls: a tqdm bar, or any callback.

Reports are made in the caller's thread (the one waiting in ``map`` or
iterating ``imap``), never in the dispatcher, so a slow display cannot hold
up the workers and a callback needs no locking of its own.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from typing import Protocol, cast, final

from .._timing import PROGRESS_INTERVAL

__all__ = ["Progress", "ProgressCallback", "make_progress"]

ProgressCallback = Callable[[int, int | None], None]
"""Called as ``callback(done, total)``; ``total`` is None when the input has no ``len()``."""


class _Bar(Protocol):
    total: float | None

    def update(self, n: float = 1) -> bool | None: ...

    def refresh(self) -> None: ...

    def close(self) -> None: ...


class _BarFactory(Protocol):
    def __call__(self, *, total: int | None, desc: str, unit: str) -> _Bar: ...


def _load_tqdm() -> _BarFactory:
    try:
        module = importlib.import_module("tqdm.auto")
    except ImportError as exc:
        raise ImportError(
            "progress=True draws a tqdm progress bar, but tqdm is not installed; "
            "install it with: pip install 'typed-channels[progress]' "
            "(or pass on_progress=callback for another display)",
            name="tqdm",
        ) from exc
    return cast(_BarFactory, module.tqdm)


@final
class _TqdmCallback:
    """A progress callback that draws a tqdm bar, created on the first report."""

    def __init__(self, factory: _BarFactory, description: str) -> None:
        self._factory = factory
        self._description = description
        self._bar: _Bar | None = None
        self._shown = 0

    def __call__(self, done: int, total: int | None) -> None:
        if self._bar is None:
            self._bar = self._factory(total=total, desc=self._description, unit="task")
        if done > self._shown:
            self._bar.update(done - self._shown)
            self._shown = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@final
class Progress:
    """Passes ``(done, total)`` to callbacks, at most every 0.1 s, and always the last one."""

    def __init__(
        self, callbacks: list[ProgressCallback], bar: _TqdmCallback | None, total: int | None
    ) -> None:
        self._callbacks = callbacks
        self._bar = bar
        self.total: int | None = total
        self._last_time = 0.0
        self._last_done = -1

    def update(self, done: int, *, force: bool = False) -> None:
        """Report ``done`` if it changed and enough time passed (or ``force``)."""
        now = time.monotonic()
        if done == self._last_done or (not force and now - self._last_time < PROGRESS_INTERVAL):
            return
        self._last_time, self._last_done = now, done
        for callback in self._callbacks:
            callback(done, self.total)

    def finish(self, done: int) -> None:
        """Make the last report and close the bar."""
        try:
            self.update(done, force=True)
        finally:
            if self._bar is not None:
                self._bar.close()


def make_progress(
    progress: bool, on_progress: ProgressCallback | None, description: str, total: int | None
) -> Progress | None:
    """Build the reporter for a call, or None; raise ``ImportError`` now if tqdm is missing."""
    callbacks: list[ProgressCallback] = []
    bar = None
    if progress:
        bar = _TqdmCallback(_load_tqdm(), description)
        callbacks.append(bar)
    if on_progress is not None:
        callbacks.append(on_progress)
    if not callbacks:
        return None
    reporter = Progress(callbacks, bar, total)
    reporter.update(0, force=True)
    return reporter
