"""Typed access to the optional comparison packages: numpy and faster_fifo.

Neither is needed: ``channels bench`` uses them when installed (the ``bench``
extra) and leaves their rows or columns out otherwise. They are imported by
name at run time and seen through the small protocols below, so the project
type-checks without them.
"""

from __future__ import annotations

import importlib
from typing import Protocol, cast

__all__ = ["FasterFifo", "FifoQueue", "Numpy", "faster_fifo", "numpy"]


class FifoQueue(Protocol):
    """What the bench uses of a ``faster_fifo.Queue``."""

    def put(self, x: object, block: bool = ..., timeout: float = ...) -> None: ...

    def put_many(self, xs: list[object], block: bool = ..., timeout: float = ...) -> None: ...

    def get(self, block: bool = ..., timeout: float = ...) -> object: ...

    def get_many(
        self, block: bool = ..., timeout: float = ..., max_messages_to_get: int = ...
    ) -> list[object]: ...

    def close(self) -> None: ...


class FasterFifo(Protocol):
    """The ``faster_fifo`` module."""

    def Queue(self, max_size_bytes: int = ...) -> FifoQueue: ...


class Array(Protocol):
    """What the bench uses of a numpy array."""

    @property
    def nbytes(self) -> int: ...


class Numpy(Protocol):
    """What the bench uses of the ``numpy`` module."""

    def ones(self, shape: int, dtype: str = ...) -> Array: ...

    def frombuffer(self, buffer: object, dtype: str = ...) -> Array: ...


def _load(name: str) -> object | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def faster_fifo() -> FasterFifo | None:
    """The ``faster_fifo`` module, or None when it is not installed."""
    return cast("FasterFifo | None", _load("faster_fifo"))


def numpy() -> Numpy | None:
    """The ``numpy`` module, or None when it is not installed."""
    return cast("Numpy | None", _load("numpy"))
