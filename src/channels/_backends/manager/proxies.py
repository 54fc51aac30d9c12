"""Typed proxies to dicts and lists held by a manager server: ``manager.dict[K, V]()``.

A proxy names its object by the server's address, the server's nonce (so a new
server at the same address is not taken for the old one) and the object's
number there, as a manager channel's core does. That is all it pickles, so it
passes to any process at any time; it never pickles the authkey. Every call is
one request to the server, atomic there; a read-modify-write of several calls
(``d[k] += 1``) needs a lock around it.

The server frees an object once no process holds a proxy of it (``store``):
each proxy counts itself there when it is made or unpickled, and uncounts
itself when it is collected. A proxy sent to another process must stay alive
in the sender until the receiver has it, as with multiprocessing's proxies.
"""

from __future__ import annotations

import contextlib
import pickle
import weakref
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, MutableSequence
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, Protocol, TypeVar, cast, final, overload

from ..._errors import ChannelError, SerializationError
from ..._process.liveness import this_process
from ..._process.per_process import PerProcess
from .keys import key_for, key_source
from .link import Link, expect_int, link_for
from .wire import Address

if TYPE_CHECKING:
    from _typeshed import SupportsKeysAndGetItem

__all__ = [
    "DictMaker",
    "DictOpener",
    "ListMaker",
    "ListOpener",
    "ManagedDict",
    "ManagedList",
    "Manager",
    "ObjectRef",
]

# Invariant: a mapping's keys are read and written.
K = TypeVar("K")
# Invariant: a mapping's values and a list's items are read and written.
V = TypeVar("V")
T = TypeVar("T")

_MISSING: Any = object()


class ObjectRef(NamedTuple):
    """What names a managed object anywhere: all a proxy pickles."""

    address: Address
    nonce: int
    oid: int
    keysource: str


class Manager(Protocol):
    """What a proxy needs of the manager that makes its object: its address and key."""

    def client_params(self) -> tuple[Address, bytes]: ...


class _Remote:
    """The connection side of a proxy: one call is one request to the server.

    It counts itself as a holder of its object in each process that uses it: at
    once where it is made or unpickled, at its first call in a forked child.
    """

    __slots__ = ("__weakref__", "_counted", "_link", "ref")

    def __init__(self, ref: ObjectRef) -> None:
        self.ref = ref
        self._link: PerProcess[Link] = PerProcess()
        self._counted = 0
        with contextlib.suppress(ChannelError):  # a server out of reach: calls will say so
            self._count()

    def _count(self) -> None:
        """Count this proxy in this process, and uncount it once it is collected."""
        link = self._link_here()
        ref = self.ref
        if link.call(ref.nonce, "hold_object", (ref.oid,)):
            finalizer = weakref.finalize(self, _uncount, link, ref.oid, this_process.pid)
            finalizer.atexit = False  # the process's end releases what it held
        self._counted = this_process.pid

    def _link_here(self) -> Link:
        return self._link.get(self._connect)

    def _connect(self) -> Link:
        ref = self.ref
        return link_for(ref.address, key_for(ref.address, ref.keysource))

    def call(self, op: str, *args: object) -> Any:
        try:
            payload = pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise SerializationError(f"cannot send {op} to a managed object: {exc}") from exc
        if self._counted != this_process.pid:
            self._count()
        link = self._link_here()
        return link.call(self.ref.nonce, "call_object", (self.ref.oid, op, payload))


def _uncount(link: Link, oid: int, pid: int) -> None:
    """A proxy was collected: tell the server with this process's next call (never a call now)."""
    if this_process.pid == pid:
        link.later("drop_object", (oid,))


def _create(manager: Manager, kind: str, initial: object) -> tuple[ObjectRef, Link]:
    """Make an object in the server; keep the link until its proxy has counted itself.

    The object is its creator's session's until then, and that session would end
    with the last reference to the link.
    """
    where, key = manager.client_params()
    try:
        payload = pickle.dumps(initial, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise SerializationError(f"cannot send the initial {kind} to the manager: {exc}") from exc
    source = key_source(where, key, given=False)
    link = link_for(where, key)
    answer = link.call(None, "new_object", (kind, payload))
    return ObjectRef(where, link.nonce(), expect_int(answer, "new_object"), source), link


@final
class ManagedDict(MutableMapping[K, V]):
    """A ``MutableMapping`` whose contents live in a manager server (``manager.dict[K, V]()``).

    Each call is one atomic request to the server; iterating walks a snapshot of
    the keys. It pickles to any process, at any time.
    """

    __slots__ = ("_remote",)

    def __init__(self, ref: ObjectRef) -> None:
        self._remote = _Remote(ref)

    def __getitem__(self, key: K) -> V:
        return cast("V", self._remote.call("getitem", key))

    def __setitem__(self, key: K, value: V) -> None:
        self._remote.call("setitem", key, value)

    def __delitem__(self, key: K) -> None:
        self._remote.call("delitem", key)

    def __len__(self) -> int:
        return cast("int", self._remote.call("len"))

    def __iter__(self) -> Iterator[K]:
        return iter(cast("list[K]", self._remote.call("keys")))

    def __contains__(self, key: object) -> bool:
        return cast("bool", self._remote.call("contains", key))

    @overload
    def get(self, key: K, /) -> V | None: ...

    @overload
    def get(self, key: K, default: V, /) -> V: ...

    @overload
    def get(self, key: K, default: T, /) -> V | T: ...

    def get(self, key: K, default: object = None, /) -> object:
        """The value at ``key``, else ``default``, in one request."""
        return self._remote.call("get", key, default)

    @overload
    def pop(self, key: K, /) -> V: ...

    @overload
    def pop(self, key: K, default: V, /) -> V: ...

    @overload
    def pop(self, key: K, default: T, /) -> V | T: ...

    def pop(self, key: K, default: object = _MISSING, /) -> object:
        """Remove ``key`` and return its value (else ``default``, else ``KeyError``)."""
        if default is _MISSING:
            return self._remote.call("pop", key)
        return self._remote.call("pop", key, default)

    def popitem(self) -> tuple[K, V]:
        """Remove and return the last pair added (``KeyError`` when empty)."""
        return cast("tuple[K, V]", self._remote.call("popitem"))

    def setdefault(self, key: K, default: V, /) -> V:
        """The value at ``key``, after setting it to ``default`` if it had none, in one request."""
        return cast("V", self._remote.call("setdefault", key, default))

    @overload
    def update(self, other: SupportsKeysAndGetItem[K, V], /, **kwargs: V) -> None: ...

    @overload
    def update(self, other: Iterable[tuple[K, V]], /, **kwargs: V) -> None: ...

    @overload
    def update(self, /, **kwargs: V) -> None: ...

    def update(self, other: object = (), /, **kwargs: V) -> None:
        """Add every pair of ``other`` and ``kwargs`` in one request."""
        items: dict[Any, Any] = dict(cast("Iterable[tuple[Any, Any]]", other))
        items.update(kwargs)
        self._remote.call("update", items)

    def clear(self) -> None:
        """Remove every pair in one request."""
        self._remote.call("clear")

    def copy(self) -> dict[K, V]:
        """A plain ``dict`` with the contents now."""
        return cast("dict[K, V]", self._remote.call("copy"))

    def __reduce__(self) -> tuple[object, ...]:
        return (ManagedDict, (self._remote.ref,))

    def __repr__(self) -> str:
        return f"<ManagedDict #{self._remote.ref.oid}>"


@final
class ManagedList(MutableSequence[T]):
    """A ``MutableSequence`` whose items live in a manager server (``manager.list[T]()``).

    Each call is one atomic request to the server; iterating walks a snapshot.
    It pickles to any process, at any time.
    """

    __slots__ = ("_remote",)

    def __init__(self, ref: ObjectRef) -> None:
        self._remote = _Remote(ref)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        return cast("T | list[T]", self._remote.call("getitem", index))

    @overload
    def __setitem__(self, index: int, value: T) -> None: ...

    @overload
    def __setitem__(self, index: slice, value: Iterable[T]) -> None: ...

    def __setitem__(self, index: int | slice, value: T | Iterable[T]) -> None:
        if isinstance(index, slice):
            value = list(cast("Iterable[T]", value))
        self._remote.call("setitem", index, value)

    def __delitem__(self, index: int | slice) -> None:
        self._remote.call("delitem", index)

    def __len__(self) -> int:
        return cast("int", self._remote.call("len"))

    def __iter__(self) -> Iterator[T]:
        return iter(cast("list[T]", self._remote.call("copy")))

    def __contains__(self, value: object) -> bool:
        return cast("bool", self._remote.call("contains", value))

    def insert(self, index: int, value: T) -> None:
        """Insert ``value`` before ``index``."""
        self._remote.call("insert", index, value)

    def append(self, value: T) -> None:
        """Add ``value`` at the end."""
        self._remote.call("append", value)

    def extend(self, values: Iterable[T]) -> None:
        """Add every one of ``values`` at the end, in one request."""
        self._remote.call("extend", list(values))

    def pop(self, index: int = -1) -> T:
        """Remove and return the item at ``index`` (``IndexError`` if there is none)."""
        return cast("T", self._remote.call("pop", index))

    def remove(self, value: T) -> None:
        """Remove the first item equal to ``value`` (``ValueError`` if there is none)."""
        self._remote.call("remove", value)

    def index(self, value: Any, start: int = 0, stop: int = 2**62) -> int:
        """Where the first item equal to ``value`` is (``ValueError`` if there is none)."""
        return cast("int", self._remote.call("index", value, start, stop))

    def count(self, value: Any) -> int:
        """How many items equal ``value``."""
        return cast("int", self._remote.call("count", value))

    def reverse(self) -> None:
        """Reverse the items in place, in one request."""
        self._remote.call("reverse")

    def clear(self) -> None:
        """Remove every item in one request."""
        self._remote.call("clear")

    def copy(self) -> list[T]:
        """A plain ``list`` with the items now."""
        return cast("list[T]", self._remote.call("copy"))

    def __reduce__(self) -> tuple[object, ...]:
        return (ManagedList, (self._remote.ref,))

    def __repr__(self) -> str:
        return f"<ManagedList #{self._remote.ref.oid}>"


@final
class DictMaker(Generic[K, V]):
    """``manager.dict[K, V]``: call it to make a ``ManagedDict[K, V]`` in the server."""

    __slots__ = ("_manager",)

    def __init__(self, manager: Manager) -> None:
        self._manager = manager

    def __call__(self, initial: Mapping[K, V] | Iterable[tuple[K, V]] = (), /) -> ManagedDict[K, V]:
        """A new dict in the server, holding ``initial``."""
        ref, _link = _create(self._manager, "dict", dict(initial))
        return ManagedDict(ref)


@final
class ListMaker(Generic[T]):
    """``manager.list[T]``: call it to make a ``ManagedList[T]`` in the server."""

    __slots__ = ("_manager",)

    def __init__(self, manager: Manager) -> None:
        self._manager = manager

    def __call__(self, initial: Iterable[T] = (), /) -> ManagedList[T]:
        """A new list in the server, holding ``initial``."""
        ref, _link = _create(self._manager, "list", list(initial))
        return ManagedList(ref)


@final
class DictOpener:
    """``manager.dict``: ``manager.dict[str, int]()`` makes a typed dict in the server."""

    __slots__ = ("_manager",)

    def __init__(self, manager: Manager) -> None:
        self._manager = manager

    @overload
    def __getitem__(self, types: tuple[type[K], type[V]], /) -> DictMaker[K, V]: ...

    @overload
    def __getitem__(self, types: object, /) -> DictMaker[Any, Any]: ...

    def __getitem__(self, types: object, /) -> DictMaker[Any, Any]:
        return DictMaker(self._manager)

    def __call__(
        self, initial: Mapping[Any, Any] | Iterable[tuple[Any, Any]] = (), /
    ) -> ManagedDict[Any, Any]:
        """A dict in the server whose types are left to inference."""
        return DictMaker[Any, Any](self._manager)(initial)


@final
class ListOpener:
    """``manager.list``: ``manager.list[str]()`` makes a typed list in the server."""

    __slots__ = ("_manager",)

    def __init__(self, manager: Manager) -> None:
        self._manager = manager

    @overload
    def __getitem__(self, item_type: type[T], /) -> ListMaker[T]: ...

    @overload
    def __getitem__(self, item_type: object, /) -> ListMaker[Any]: ...

    def __getitem__(self, item_type: object, /) -> ListMaker[Any]:
        return ListMaker(self._manager)

    def __call__(self, initial: Iterable[Any] = (), /) -> ManagedList[Any]:
        """A list in the server whose item type is left to inference."""
        return ListMaker[Any](self._manager)(initial)
