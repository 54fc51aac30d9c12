"""How items become bytes in ``send`` and come back in ``recv``.

Serializing in the caller of ``send`` (not in a background thread, as
``multiprocessing.Queue`` does) is what makes an unpicklable item an error at
the call that caused it.
"""

from __future__ import annotations

import copyreg
import io
import json
import pickle
from collections.abc import Callable
from multiprocessing.reduction import ForkingPickler
from typing import Any, Protocol, runtime_checkable

from ._errors import ConfigError, SerializationError

__all__ = [
    "JSON",
    "PASS_THROUGH",
    "PICKLE",
    "Serializer",
    "describe",
    "loads",
    "resolve_serializer",
    "serializer_name",
]

#: What a failing serializer may raise that is not the item's fault: Ctrl-C, generator
#: close. Anything else, even ``SystemExit``, becomes ``SerializationError``.
PASS_THROUGH = (KeyboardInterrupt, GeneratorExit)


@runtime_checkable
class Serializer(Protocol):
    """Turns items into bytes and back; must itself be picklable (module-level).

    An optional ``name`` attribute names it in error messages; by default its class name does.
    """

    def dumps(self, item: object) -> bytes | memoryview: ...

    def loads(self, data: bytes | memoryview) -> object: ...


class _Pickler(pickle.Pickler):
    """A pickler with multiprocessing's reducers, whose table is merged once.

    ``ForkingPickler`` copies the whole copyreg table for every item it pickles;
    this keeps one merged table and merges again only when a reducer is added.
    """

    _merged_from = (-1, -1)

    @classmethod
    def merge_table(cls) -> None:
        """Merge copyreg's reducers with multiprocessing's, if either has grown."""
        extra: dict[type, Callable[[Any], Any]] = getattr(ForkingPickler, "_extra_reducers", {})
        sizes = (len(copyreg.dispatch_table), len(extra))
        if sizes != cls._merged_from:
            cls.dispatch_table = {**copyreg.dispatch_table, **extra}
            cls._merged_from = sizes


class _Pickle:
    """Pickle with multiprocessing's reducers, so connections and sockets travel too.

    Unpickling runs code chosen by the sender: never use it with an untrusted peer.
    """

    name = "pickle"

    def dumps(self, item: object) -> bytes:
        _Pickler.merge_table()
        buf = io.BytesIO()
        _Pickler(buf, pickle.HIGHEST_PROTOCOL).dump(item)
        # Not getbuffer(): a view kept alive by a traceback can outlive its BytesIO
        # in a reference cycle, which some Python versions do not survive.
        # getvalue() hands over the buffer without a copy.
        return buf.getvalue()

    def loads(self, data: bytes | memoryview) -> object:
        return pickle.loads(data)

    def __reduce__(self) -> str:
        return "PICKLE"


class _Json:
    """JSON: plain data only, and nothing the peer sends can run code here."""

    name = "json"

    def dumps(self, item: object) -> bytes:
        return json.dumps(item, separators=(",", ":"), allow_nan=False).encode()

    def loads(self, data: bytes | memoryview) -> object:
        return json.loads(bytes(data))

    def __reduce__(self) -> str:
        return "JSON"


PICKLE = _Pickle()
JSON = _Json()
_BY_NAME: dict[str, Serializer] = {"pickle": PICKLE, "json": JSON}


def resolve_serializer(value: object) -> Serializer:
    """Return the serializer named by ``value`` (a name or a ``Serializer``)."""
    if value is None:
        return PICKLE
    if isinstance(value, str):
        try:
            return _BY_NAME[value]
        except KeyError:
            raise ConfigError(
                f"unknown serializer {value!r}; choose one of {sorted(_BY_NAME)} "
                "or pass an object with dumps() and loads()"
            ) from None
    if isinstance(value, Serializer):
        return value
    raise ConfigError(
        f"serializer must be a name or an object with dumps() and loads(), not {value!r}"
    )


def serializer_name(serializer: Serializer) -> str:
    """The serializer's ``name`` if it has one, else its class name."""
    name = getattr(serializer, "name", None)
    return name if isinstance(name, str) else type(serializer).__name__


def loads(serializer: Serializer, data: bytes | memoryview) -> object:
    """Deserialize a received item, turning any failure into ``SerializationError``."""
    try:
        return serializer.loads(data)
    except PASS_THROUGH:
        raise
    except BaseException as exc:
        raise SerializationError(
            f"cannot deserialize a received item with {serializer_name(serializer)}: "
            f"{describe(exc)}"
        ) from exc


def describe(exc: BaseException) -> str:
    """``Type: message``, so that even a bare ``SystemExit(0)`` says what happened."""
    return f"{type(exc).__name__}: {exc}"
