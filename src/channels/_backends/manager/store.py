"""Inside a manager server: the dicts and lists that managed proxies reach.

Each object has a number; a call names the object, one operation from a fixed
table, and the pickled arguments, and runs under one lock, so each operation
is atomic for every client.

An object lives while some proxy of it does, as multiprocessing's managed
objects do: each client process (its session) counts the proxies it holds, and
the object goes when every count is back to zero, or when the sessions that
held it are gone (a process that dies drops no proxy, but its anchor closes).
"""

from __future__ import annotations

import itertools
import operator
import pickle
import threading
from collections.abc import Callable
from typing import Any

from ..._errors import ChannelError, ConfigError

__all__ = ["ObjectStore"]

_Op = Callable[..., object]
_Dict = dict[Any, Any]
_List = list[Any]


def _values(d: dict[Any, Any]) -> list[Any]:
    return list(d.values())


def _items(d: dict[Any, Any]) -> list[tuple[Any, Any]]:
    return list(d.items())


_COMMON: dict[str, _Op] = {
    "getitem": operator.getitem,
    "setitem": operator.setitem,
    "delitem": operator.delitem,
    "len": len,
    "contains": operator.contains,
}

_DICT_OPS: dict[str, _Op] = {
    **_COMMON,
    "keys": list,
    "values": _values,
    "items": _items,
    "get": _Dict.get,
    "pop": _Dict.pop,
    "popitem": _Dict.popitem,
    "setdefault": _Dict.setdefault,
    "update": _Dict.update,
    "clear": _Dict.clear,
    "copy": _Dict.copy,
}

_LIST_OPS: dict[str, _Op] = {
    **_COMMON,
    "insert": _List.insert,
    "append": _List.append,
    "extend": _List.extend,
    "pop": _List.pop,
    "remove": _List.remove,
    "index": _List.index,
    "count": _List.count,
    "reverse": _List.reverse,
    "clear": _List.clear,
    "copy": _List.copy,
}

_OPS: dict[type, dict[str, _Op]] = {dict: _DICT_OPS, list: _LIST_OPS}


class ObjectStore:
    """The managed objects of one server, by number."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[int, dict[Any, Any] | list[Any]] = {}
        self._holders: dict[int, dict[int, int]] = {}  # oid -> {session: proxies}
        self._ids = itertools.count(1)

    def new(self, kind: str, initial: bytes, session: int) -> int:
        """Hold a new ``"dict"`` or ``"list"`` made from the pickled ``initial``; its number.

        It is ``session``'s until its first proxy counts itself (``hold``).
        """
        contents = pickle.loads(initial)
        made: dict[Any, Any] | list[Any]
        if kind == "dict":
            made = dict(contents)
        elif kind == "list":
            made = list(contents)
        else:
            raise ConfigError(f"a managed object is a dict or a list, not {kind!r}")
        with self._lock:
            oid = next(self._ids)
            self._objects[oid] = made
            self._holders[oid] = {session: 0}
        return oid

    def hold(self, oid: int, session: int) -> bool:
        """Count one more proxy of ``oid`` in ``session``; False if the object is gone."""
        with self._lock:
            holders = self._holders.get(oid)
            if holders is None:
                return False
            holders[session] = holders.get(session, 0) + 1
            return True

    def drop(self, oid: int, session: int) -> None:
        """One proxy of ``oid`` in ``session`` is gone; free the object after its last."""
        with self._lock:
            holders = self._holders.get(oid)
            if holders is None or holders.get(session, 0) <= 0:
                return
            holders[session] -= 1
            if not holders[session]:
                del holders[session]
                if not holders:
                    self._free(oid)

    def release(self, session: int) -> None:
        """``session`` is gone: drop every proxy it held."""
        with self._lock:
            for oid, holders in list(self._holders.items()):
                if session in holders:
                    del holders[session]
                    if not holders:
                        self._free(oid)

    def _free(self, oid: int) -> None:
        del self._holders[oid]
        del self._objects[oid]

    def call(self, oid: int, op: str, args: bytes) -> object:
        """Run operation ``op`` with the pickled ``args`` on object ``oid``; its answer."""
        target = self._objects.get(oid)
        if target is None:
            raise ChannelError(f"this manager server holds no managed object {oid}")
        run = _OPS[type(target)].get(op)
        if run is None:
            raise ChannelError(f"{op!r} is not an operation of a managed {type(target).__name__}")
        arguments = pickle.loads(args)
        with self._lock:
            return run(target, *arguments)
