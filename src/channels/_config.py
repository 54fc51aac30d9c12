"""Specs, options and their checks: everything ``open_channel`` reads from the user.

A spec is a backend name or a URL ``NAME://[HOST:PORT][/CHANNEL]?opt=value&...``;
options in the URL and in keywords mean the same. With no spec, the
``CHANNELS_URL`` environment variable decides, else the default backend.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from multiprocessing.context import BaseContext
from typing import Self, Union
from urllib.parse import parse_qsl, unquote, unquote_plus, urlsplit

from ._codec.serializers import Serializer
from ._errors import ConfigError

__all__ = [
    "DEFAULT_BACKEND",
    "ENV_URL",
    "ContextSpec",
    "Options",
    "SerializerSpec",
    "Spec",
    "check_maxsize",
    "check_message_limit",
    "coerce_options",
    "parse_spec",
    "redact_spec",
]

ENV_URL = "CHANNELS_URL"
DEFAULT_BACKEND = "queue"
#: Options whose values are secrets, never shown in a message or a log line.
SECRET_OPTIONS = frozenset({"authkey", "password"})

#: A start method name or a ``multiprocessing`` context; None means the default.
ContextSpec = Union[str, BaseContext, None]  # noqa: UP007 (a runtime alias)
#: A serializer name ("pickle", "json") or an object with ``dumps``/``loads``.
SerializerSpec = Union[str, Serializer, None]  # noqa: UP007


@dataclass(frozen=True)
class Spec:
    """A parsed spec: the backend name and the options the spec itself carries."""

    backend: str
    options: dict[str, object]


@dataclass(frozen=True, kw_only=True)
class Options:
    """A backend's options, declared once: their names, types, defaults and checks.

    A backend subclasses this as a frozen dataclass. Its channel class takes
    exactly these fields as keyword arguments (``tests/test_options.py`` holds
    the two together), ``open_channel`` reads their types to turn URL strings
    into values, and ``ChannelOptions`` is the union of every backend's fields.
    Constructing one runs ``check``, so a bad value fails at the call that gave it.
    """

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise ``ConfigError`` for a value this backend cannot take; extended by subclasses."""

    @classmethod
    def given(cls, arguments: Mapping[str, object]) -> Self:
        """The options a channel class's ``__init__`` was called with (its ``locals()``).

        The signature is the one place a type checker reads the options from, so
        the body takes them from there by name rather than listing them again.
        """
        return cls(**{field.name: arguments[field.name] for field in fields(cls)})

    @classmethod
    def hints(cls) -> dict[str, object]:
        """Each option's name and its annotated type."""
        annotations = typing.get_type_hints(cls)
        return {field.name: annotations[field.name] for field in fields(cls)}


def parse_spec(spec: str | None) -> Spec:
    """Parse a name or URL; with None, read ``CHANNELS_URL`` or use the default backend."""
    if spec is None:
        spec = os.environ.get(ENV_URL) or DEFAULT_BACKEND
    if not isinstance(spec, str):
        raise ConfigError(f"a channel spec is a backend name or a URL string, not {spec!r}")
    text = spec.strip()
    shown = repr(redact_spec(spec))
    if "://" not in text:
        if not text or any(c in text for c in "/?:&="):
            raise ConfigError(
                f"bad channel spec {shown}: expected NAME or NAME://[HOST:PORT][/NAME]?opt=value"
            )
        return Spec(text.lower(), {})
    parts, port = None, None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        if "@" not in text:
            raise ConfigError(f"bad channel spec {shown}: {exc}") from exc
        parts = None  # the parser's words may quote part of a password: raised below, apart
    if parts is None:
        raise ConfigError(
            f"bad channel spec {shown}: the address does not parse; a password with "
            "'/', '?', '#' or '@' in it must be percent-encoded (%2F, %3F, %23, %40)"
        )
    if parts.fragment:
        raise ConfigError(f"bad channel spec {shown}: a spec has no #fragment")
    options: dict[str, object] = {}
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ConfigError(
            f"bad options in channel spec {shown}: expected opt=value pairs joined by '&'"
        ) from None
    for key, value in pairs:
        if key in options:
            raise ConfigError(f"option {key!r} is given twice in channel spec {shown}")
        options[key] = value
    if parts.hostname:
        options["address"] = (parts.hostname, port if port is not None else 0)
    elif port is not None:
        raise ConfigError(f"bad channel spec {shown}: a port needs a host")
    name = unquote(parts.path.lstrip("/"))
    if name:
        options["name"] = name
    # Credentials in the URL (redis://user:secret@host) become options, never echoed.
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.password is not None:
        options["password"] = unquote(parts.password)
    return Spec(parts.scheme.lower(), options)


def redact_spec(spec: str) -> str:
    """``spec`` with its credentials (a URL's password, secret options) shown as ``***``.

    A password may hold a raw ``/``, ``?`` or ``#`` that URL parsing would read
    as the end of the host, so everything up to the last ``@`` counts as user
    and password: whatever a parser takes for the password, none of it shows.
    """
    scheme, slashes, rest = spec.partition("://")
    if slashes and "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        shown_user = f"{user}:***" if colon and not any(c in user for c in "/?#") else "***"
        head = f"{scheme}://{shown_user}@"
    else:
        head = f"{scheme}{slashes}" if slashes else ""
        rest = rest if slashes else spec
    before, question, query = rest.partition("?")
    pairs = query.split("&") if question else []
    for i, pair in enumerate(pairs):
        key, equals, _ = pair.partition("=")
        if equals and unquote_plus(key).strip().lower() in SECRET_OPTIONS:
            pairs[i] = f"{key}=***"
    return head + before + question + "&".join(pairs)


def coerce_options(
    backend: str, options: Mapping[str, object], hints: Mapping[str, object]
) -> dict[str, object]:
    """Check option names against ``hints`` and turn URL strings into the hinted types."""
    unknown = sorted(set(options) - set(hints))
    if unknown:
        valid = ", ".join(sorted(hints)) or "none"
        raise ConfigError(
            f"backend {backend!r} does not take option(s) {', '.join(map(repr, unknown))}; "
            f"it takes: {valid}"
        )
    return {key: _coerce(backend, key, value, hints[key]) for key, value in options.items()}


def _coerce(backend: str, key: str, value: object, hint: object) -> object:
    if not isinstance(value, str):
        return value
    allowed = (
        typing.get_args(hint)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is Union
        else (hint,)
    )
    if str in allowed:
        return value
    if value.lower() in ("", "none") and type(None) in allowed:
        return None
    converters: list[Callable[[str], object]] = []
    if bool in allowed:
        converters.append(_to_bool)
    if int in allowed:
        converters.append(int)
    if float in allowed:
        converters.append(float)
    for convert in converters:
        try:
            return convert(value)
        except ValueError:
            continue
    if typing.get_origin(hint) is None and not converters:
        return value
    shown = "***" if key in SECRET_OPTIONS else repr(value)
    raise ConfigError(
        f"option {key}={shown} of backend {backend!r} is not a valid {_describe(hint)}"
    )


def _to_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def _describe(hint: object) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def check_maxsize(maxsize: object) -> int:
    """``maxsize`` must be a whole number >= 0 (0 means unbounded)."""
    if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 0:
        raise ConfigError(f"maxsize must be a whole number >= 0 (0 = unbounded), not {maxsize!r}")
    return maxsize


def check_message_limit(limit: object) -> int | None:
    """``max_message_size`` must be None or a positive number of bytes."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise ConfigError(
            f"max_message_size must be None or a positive number of bytes, not {limit!r}"
        )
    return limit
