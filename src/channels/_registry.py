"""The backend registry: names to channel factories, built-in or installed.

Built-in backends are imported only when first used. Third-party backends come
from the entry-point group ``typed_channels.backends`` (loaded lazily, on the
first lookup of a name the registry does not know) or from ``register_backend``.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import threading
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

from ._config import Options, coerce_options
from ._errors import ConfigError
from ._protocols import Channel

__all__ = [
    "ENTRY_POINT_GROUP",
    "Backend",
    "Features",
    "backends",
    "get_backend",
    "register_backend",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "typed_channels.backends"


@dataclass(frozen=True)
class Features:
    """What a backend can do, so that asking for more is an error at ``open_channel``."""

    bounded: bool = False
    many_producers: bool = True
    many_consumers: bool = True
    cross_machine: bool = False


#: A channel factory: called with the options, returns a new channel.
Factory = Callable[..., Channel[typing.Any]]


@dataclass(frozen=True)
class Backend:
    """A registered backend: its name, factory, features and the options it takes."""

    name: str
    factory: Factory
    features: Features
    options: Mapping[str, object]
    origin: str

    def open(self, options: Mapping[str, object]) -> Channel[typing.Any]:
        self.check_refused(options)
        if "maxsize" in options and "maxsize" not in self.options:
            bounded = [n for n in _BUILTIN if n != self.name and _bounded(n)]
            raise ConfigError(
                f"backend {self.name!r} cannot be bounded (it takes no maxsize); "
                f"for a bounded channel use {' or '.join(bounded)}"
            )
        return self.factory(**coerce_options(self.name, options, self.options))

    def check_refused(self, options: Mapping[str, object]) -> None:
        """Raise ``ConfigError`` for an option other backends take that this one cannot honour."""
        refused: Mapping[str, str] = getattr(self.factory, "refused", {})
        clash = sorted(set(options) & set(refused))
        if clash:  # say why this backend cannot, rather than only that it does not
            raise ConfigError(
                f"backend {self.name!r} does not take the option {clash[0]!r}: {refused[clash[0]]}"
            )


_BUILTIN = {
    "thread": "channels._backends.thread:ThreadChannel",
    "pipe": "channels._backends.local.channel:PipeChannel",
    "queue": "channels._backends.local.channel:QueueChannel",
    "simplequeue": "channels._backends.local.channel:SimpleQueueChannel",
    "manager": "channels._backends.manager:ManagerChannel",
    "redis": "channels._backends.redis:RedisChannel",
    "rediss": "channels._backends.redis:rediss",
}

_lock = threading.Lock()
_loaded: dict[str, Backend] = {}
_registered: dict[str, Backend] = {}
_entry_points_read = False
_entry_point_targets: dict[str, str] = {}


def register_backend(
    name: str,
    factory: Factory,
    *,
    features: Features | None = None,
    replace: bool = False,
) -> None:
    """Make ``factory`` available as backend ``name`` to ``open_channel``.

    ``factory`` is called with the options as keywords; its signature says which
    options it takes and their types (URL values are converted to them).
    ``features`` defaults to the factory's ``features`` attribute, if any.
    """
    if not name or not name.isidentifier() or name != name.lower():
        raise ConfigError(f"a backend name is a lower-case identifier, not {name!r}")
    with _lock:
        if not replace and (name in _registered or name in _BUILTIN):
            raise ConfigError(
                f"backend {name!r} is already registered; pass replace=True to replace it"
            )
        _registered[name] = _describe(name, factory, features, origin="register_backend")
        _loaded.pop(name, None)


def backends() -> list[str]:
    """The names of every backend that can be opened, built-in and installed."""
    _read_entry_points()
    return sorted({*_BUILTIN, *_entry_point_targets, *_registered})


def get_backend(name: str) -> Backend:
    """Return backend ``name``, loading it if needed; ``ConfigError`` if there is none."""
    key = name.lower()
    with _lock:
        if key in _registered:
            return _registered[key]
        if key in _loaded:
            return _loaded[key]
    target = _BUILTIN.get(key)
    if target is None:  # built-in names win, so only other names need the entry points
        _read_entry_points()
        target = _entry_point_targets.get(key)
    if target is None:
        raise ConfigError(
            f"unknown channel backend {name!r}; available: {', '.join(backends())} "
            f"(third-party backends register under the entry-point group {ENTRY_POINT_GROUP!r})"
        )
    factory = _import(key, target)
    backend = _describe(key, factory, None, origin=target)
    with _lock:
        _loaded[key] = backend
    return backend


def _bounded(name: str) -> bool:
    """Whether built-in backend ``name`` says it can be bounded (its ``Features``)."""
    try:
        return get_backend(name).features.bounded
    except ConfigError:
        return False


def _import(name: str, target: str) -> Factory:
    module_name, _, attr = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr or "backend")
    except Exception as exc:  # a broken plug-in must not hide the others
        raise ConfigError(f"backend {name!r} ({target}) cannot be loaded: {exc}") from exc
    if not callable(factory):
        raise ConfigError(f"backend {name!r} ({target}) is not a channel factory: {factory!r}")
    return cast(Factory, factory)


def _read_entry_points() -> None:
    global _entry_points_read
    if _entry_points_read:
        return
    # Slow to import (email, zipfile, pathlib): read only for a name no built-in backend has.
    from importlib.metadata import entry_points  # noqa: PLC0415

    found = {ep.name.lower(): ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    with _lock:
        _entry_point_targets.update({k: v for k, v in found.items() if k not in _BUILTIN})
        _entry_points_read = True
    shadowed = sorted(set(found) & set(_BUILTIN))
    if shadowed:
        log.warning("ignoring entry points that would replace built-in backends: %s", shadowed)


def _describe(name: str, factory: Factory, features: Features | None, origin: str) -> Backend:
    if features is None:
        declared = getattr(factory, "features", None)
        features = declared if isinstance(declared, Features) else Features()
    return Backend(name, factory, features, _option_hints(factory), origin)


def _option_hints(factory: Factory) -> dict[str, object]:
    """The keyword options ``factory`` takes, with their annotated types.

    A built-in channel class declares them once, as its ``options`` dataclass;
    a third-party factory's own signature says them.
    """
    declared = getattr(factory, "options", None)
    if isinstance(declared, type) and issubclass(declared, Options):
        return declared.hints()
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target)
    except Exception:
        hints = {}
    params = inspect.signature(target).parameters
    return {
        p.name: hints.get(p.name, object)
        for p in params.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"
    }
