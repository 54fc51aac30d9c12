"""How items become bytes in ``send`` and come back in ``recv``.

Serializing in the caller of ``send`` (not in a background thread, as
``multiprocessing.Queue`` does) is what makes an unpicklable item an error at
the call that caused it.
"""

from __future__ import annotations

import copyreg
import io
import pickle
import threading
from collections.abc import Callable
from multiprocessing.reduction import ForkingPickler
from typing import Any, Protocol, cast, runtime_checkable

from .._errors import ConfigError, SerializationError

__all__ = [
    "JSON",
    "PASS_THROUGH",
    "PICKLE",
    "Serializer",
    "cannot_load",
    "describe",
    "loader",
    "loads",
    "resolve_serializer",
    "serializer_name",
]

#: Told each buffer pickle could keep out of band; True keeps it in band.
BufferCallback = Callable[[pickle.PickleBuffer], bool]

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
        extra = cast("dict[type, Callable[[Any], Any]]", vars(ForkingPickler)["_extra_reducers"])
        sizes = (len(copyreg.dispatch_table), len(extra))
        if sizes != cls._merged_from:
            cls.dispatch_table = {**copyreg.dispatch_table, **extra}
            cls._merged_from = sizes


#: The largest pickle whose buffer the reused pickler keeps for the next item.
_KEEP = 1 << 16


class _Reused:
    """One pickler kept between items, for whichever thread finds it free."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.keep_apart: BufferCallback | None = None
        self.table: object = None
        self.renew()

    def renew(self) -> None:
        self.buf = io.BytesIO()
        self.table = _Pickler.dispatch_table
        self.pickler = _Pickler(self.buf, pickle.HIGHEST_PROTOCOL, buffer_callback=self._told)

    def _told(self, buffer: pickle.PickleBuffer) -> bool:
        keep_apart = self.keep_apart
        return True if keep_apart is None else keep_apart(buffer)


_reused = _Reused()


class _Pickle:
    """Pickle with multiprocessing's reducers, so connections and sockets travel too.

    Unpickling runs code chosen by the sender: never use it with an untrusted peer.
    """

    name = "pickle"

    def dumps(self, item: object) -> bytes:
        return self.dumps_apart(item, None)

    def dumps_apart(self, item: object, keep_apart: BufferCallback | None) -> bytes:
        """Pickle ``item`` (protocol 5), handing large buffers to ``keep_apart``.

        Each thread reuses one pickler (making one costs more than pickling a
        small item); an item whose pickling pickles something else first gets a
        fresh one.
        """
        _Pickler.merge_table()
        reused = _reused
        if not reused.lock.acquire(False):  # another thread, or pickling within pickling
            buf = io.BytesIO()
            _Pickler(buf, pickle.HIGHEST_PROTOCOL, buffer_callback=keep_apart).dump(item)
            return buf.getvalue()
        try:
            if reused.table is not _Pickler.dispatch_table:
                reused.renew()
            buf, pickler = reused.buf, reused.pickler
            reused.keep_apart = keep_apart
            try:
                buf.seek(0)
                buf.truncate()
                pickler.dump(item)
                # Not getbuffer(): a view kept alive by a traceback can outlive its
                # BytesIO in a reference cycle, which some Python versions do not survive.
                return buf.getvalue()
            except BaseException:
                reused.renew()  # start the next item with a pickler in a known state
                raise
            finally:
                pickler.clear_memo()  # the memo holds what was pickled: keep nothing alive
                if buf.tell() > _KEEP:
                    reused.renew()  # do not keep a large item's bytes between items
        finally:
            reused.keep_apart = None
            reused.lock.release()

    def loads(self, data: bytes | memoryview) -> object:
        return pickle.loads(data)

    def __reduce__(self) -> str:
        return "PICKLE"


class _Json:
    """JSON: plain data only, and nothing the peer sends can run code here.

    ``json`` is imported on first use: the pool, which pickles, never needs it.
    """

    name = "json"

    def dumps(self, item: object) -> bytes:
        import json  # noqa: PLC0415

        return json.dumps(item, separators=(",", ":"), allow_nan=False).encode()

    def loads(self, data: bytes | memoryview) -> object:
        import json  # noqa: PLC0415

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


def loader(serializer: Serializer) -> Callable[[bytes | memoryview], object]:
    """The function that turns ``serializer``'s bytes back into an item, looked up once."""
    return pickle.loads if serializer is PICKLE else serializer.loads


def loads(serializer: Serializer, data: bytes | memoryview) -> object:
    """Deserialize a received item, turning any failure into ``SerializationError``."""
    try:
        return serializer.loads(data)
    except PASS_THROUGH:
        raise
    except BaseException as exc:
        raise cannot_load(serializer, exc) from exc


def cannot_load(serializer: Serializer, exc: BaseException) -> SerializationError:
    """The error for a received item that ``serializer`` could not turn back into an item."""
    return SerializationError(
        f"cannot deserialize a received item with {serializer_name(serializer)}: {describe(exc)}"
    )


def describe(exc: BaseException) -> str:
    """``Type: message``, so that even a bare ``SystemExit(0)`` says what happened."""
    return f"{type(exc).__name__}: {exc}"
