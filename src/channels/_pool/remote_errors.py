"""Moving exceptions and values across the process boundary without losing them.

A worker's exception travels as pickled bytes with its formatted traceback; the
parent rebuilds it with its original type and a ``RemoteTraceback`` as the
cause, so the report shows where in the worker it went wrong. Anything that
cannot be pickled becomes a ``SerializationError`` naming what failed, instead
of killing a worker or losing a task.

Everything the pool moves (chunks of inputs, results, exceptions) goes through
the codec channels use (``channels._codec.serializers.PICKLE``): pickle with
multiprocessing's reducers, one pickle per chunk, so a chunk of inputs or of
results crosses the pipe as one batch.
"""

from __future__ import annotations

import traceback
from typing import cast

from .._codec.serializers import PICKLE
from .._errors import SerializationError

__all__ = ["RemoteTraceback", "describe", "dumps", "loads", "pack_exception", "unpack_exception"]


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, attached as its ``__cause__``."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text: str = text

    def __str__(self) -> str:
        return f"\n(raised in a pool worker)\n{self.text.rstrip()}"


def dumps(obj: object) -> bytes:
    """Pickle ``obj`` with the channels' codec: what a channel's ``send`` does to an item."""
    return PICKLE.dumps(obj)


def loads(data: bytes | memoryview) -> object:
    """Unpickle what ``dumps`` made, with the channels' codec."""
    return PICKLE.loads(data)


def describe(obj: object, limit: int = 80) -> str:
    """A short ``repr`` of ``obj`` for error messages that never raises."""
    try:
        text = repr(obj)
    except Exception:
        text = f"<{type(obj).__qualname__} object>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def pack_exception(exc: BaseException) -> bytes:
    """Pickle ``exc`` with its formatted traceback, falling back to a picklable stand-in.

    The round trip is tried here, in the worker, so that an exception whose
    class cannot be rebuilt (a custom ``__init__`` signature, an unpicklable
    attribute) still reaches the caller as a clear error with the traceback.
    """
    text = "".join(traceback.format_exception(exc))
    try:
        data = dumps(exc)
        loads(data)
    except BaseException as err:
        stand_in = SerializationError(
            f"the worker raised {type(exc).__qualname__}: {describe(str(exc), 200)}, "
            f"which cannot be pickled back to the caller ({type(err).__name__}: {err})"
        )
        data = dumps(stand_in)
    return dumps((data, text))


def unpack_exception(payload: bytes) -> BaseException:
    """Rebuild an exception packed by ``pack_exception``, with its remote traceback as cause."""
    data, text = cast("tuple[bytes, str]", loads(payload))
    try:
        loaded: object = loads(data)
    except BaseException as err:  # SystemExit from a hostile __reduce__ included
        loaded = SerializationError(
            f"the worker raised an exception that cannot be unpickled here ({err}); "
            "its traceback is attached"
        )
    if not isinstance(loaded, BaseException):
        loaded = SerializationError(f"the worker sent {describe(loaded)} instead of an exception")
    # Past the class's own __setattr__: a frozen dataclass refuses every assignment.
    object.__setattr__(loaded, "__cause__", RemoteTraceback(text))
    return loaded
