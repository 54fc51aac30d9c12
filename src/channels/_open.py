"""``open_channel[T](spec=None, /, **options)``: the one call that picks a backend.

``open_channel`` is an object whose ``[T]`` returns a typed opener, so type
checkers see ``Channel[T]`` on every version (the trick works where a class
whose ``__new__`` returns another type does not).
"""

from __future__ import annotations

from typing import Any, Generic, TypedDict, TypeVar, final, overload

from typing_extensions import Unpack

from ._config import ContextSpec, SerializerSpec, parse_spec, redact_spec
from ._errors import ConfigError
from ._protocols import Channel
from ._registry import get_backend

__all__ = ["ChannelOptions", "open_channel"]

# Invariant: the opener hands out a Channel[T], which is invariant.
T = TypeVar("T")


class ChannelOptions(TypedDict, total=False):
    """The keyword options of ``open_channel``; each backend takes a subset."""

    maxsize: int
    context: ContextSpec
    serializer: SerializerSpec
    max_message_size: int | None
    spill_dir: str | None
    address: tuple[str, int] | str | None
    authkey: bytes | str | None
    name: str | None


def _open(spec: str | None, options: dict[str, Any]) -> Channel[Any]:
    parsed = parse_spec(spec)
    clash = sorted(set(parsed.options) & set(options))
    if clash:
        raise ConfigError(
            f"option(s) {', '.join(clash)} given both in the spec "
            f"{redact_spec(spec or '')!r} and as keywords"
        )
    return get_backend(parsed.backend).open({**parsed.options, **options})


@final
class ChannelOpener(Generic[T]):
    """``open_channel[T]``: call it to open a ``Channel[T]``."""

    __slots__ = ()

    def __call__(self, spec: str | None = None, /, **options: Unpack[ChannelOptions]) -> Channel[T]:
        """Open a channel; see ``open_channel``."""
        return _open(spec, dict(options))


_OPENER: ChannelOpener[Any] = ChannelOpener()


@final
class _OpenChannel:
    """Open a channel: ``open_channel[int]("queue", maxsize=100)``.

    The spec is a backend name or a URL ``NAME://[HOST:PORT][/NAME]?opt=value``;
    with none, ``CHANNELS_URL`` decides, else ``"queue"``. Raises ``ConfigError``
    for an unknown backend or a bad option, naming the valid choices.
    """

    __slots__ = ()

    @overload
    def __getitem__(self, item_type: type[T], /) -> ChannelOpener[T]: ...

    @overload
    def __getitem__(self, item_type: object, /) -> ChannelOpener[Any]: ...

    def __getitem__(self, item_type: object, /) -> ChannelOpener[Any]:
        return _OPENER

    def __call__(
        self, spec: str | None = None, /, **options: Unpack[ChannelOptions]
    ) -> Channel[Any]:
        """Open a channel whose item type is left to inference (``Channel[Any]``)."""
        return _open(spec, dict(options))

    def __repr__(self) -> str:
        return "channels.open_channel"


open_channel: _OpenChannel = _OpenChannel()
