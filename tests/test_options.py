"""Each backend's options are declared once, as a dataclass; the rest must agree with it."""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing

import pytest

import channels
from channels import ConfigError
from channels._config import Options
from channels._open import ChannelOptions
from channels._registry import get_backend

#: Options that are live objects, never in a URL: given to the channel class itself.
OBJECTS_ONLY = {"manager"}

DECLARED = ["thread", "pipe", "queue", "simplequeue", "manager", "redis", "rediss"]


def _declared(name: str) -> type[Options]:
    factory = get_backend(name).factory
    options = getattr(factory, "options", None)
    assert isinstance(options, type), name
    assert issubclass(options, Options), name
    return options


def _members(hint: object) -> set[object]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return set(typing.get_args(hint))
    return {hint}


@pytest.mark.parametrize("name", [n for n in DECLARED if n != "rediss"])  # rediss: redis, over TLS
def test_the_channel_class_takes_exactly_the_declared_options(name: str) -> None:
    options = _declared(name)
    factory = get_backend(name).factory
    assert inspect.isclass(factory)
    params = {
        p.name: p
        for p in inspect.signature(factory.__init__).parameters.values()
        if p.kind is p.KEYWORD_ONLY
    }
    fields = {f.name: f for f in dataclasses.fields(options)}
    assert set(params) == set(fields)
    init_hints = typing.get_type_hints(factory.__init__)
    for key, field in fields.items():
        assert params[key].default == field.default, key
        assert init_hints[key] == options.hints()[key], key


@pytest.mark.parametrize("name", DECLARED)
def test_open_channel_reads_the_declared_options(name: str) -> None:
    assert dict(get_backend(name).options) == _declared(name).hints()


@pytest.mark.parametrize("name", DECLARED)
def test_channel_options_holds_every_declared_option(name: str) -> None:
    typed = typing.get_type_hints(ChannelOptions)
    for key, hint in _declared(name).hints().items():
        if key in OBJECTS_ONLY:
            continue
        assert key in typed, key
        assert _members(hint) <= _members(typed[key]), key


@pytest.mark.parametrize(
    ("spec", "options", "words"),
    [
        ("queue", {"maxsize": -1}, "maxsize"),
        ("pipe", {"shm_threshold": -5}, "shm_threshold"),
        ("simplequeue", {"serializer": "yaml"}, "serializer"),
        ("thread", {"maxsize": "many"}, "maxsize"),
        ("queue", {"max_message_size": 0}, "max_message_size"),
        ("queue", {"context": "teleport"}, "start method"),
    ],
)
def test_a_bad_value_is_refused_where_it_is_given(
    spec: str, options: dict[str, object], words: str
) -> None:
    with pytest.raises(ConfigError, match=words):
        channels.open_channel(spec, **options)  # type: ignore[arg-type]
