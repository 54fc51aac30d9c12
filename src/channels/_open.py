"""``open_channel[T](spec=None, /, **options)``: the one call that picks a backend.

``open_channel`` is an object whose ``[T]`` returns a typed opener, so type
checkers see ``Channel[T]`` on every version (the trick works where a class
whose ``__new__`` returns another type does not).
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypedDict, TypeVar, Unpack, final, overload

from ._config import ContextSpec, SerializerSpec, coerce_options, parse_spec, redact_spec
from ._errors import ConfigError
from ._protocols import Channel, Receiver, Sender
from ._registry import get_backend

__all__ = [
    "ChannelOptions",
    "ReceiverOpener",
    "SenderOpener",
    "open_channel",
    "open_receiver",
    "open_sender",
]

# Invariant: the opener hands out a Channel[T], which is invariant.
T = TypeVar("T")


class ChannelOptions(TypedDict, total=False):
    """The keyword options of ``open_channel``; each backend takes a subset."""

    maxsize: int | None
    context: ContextSpec
    serializer: SerializerSpec
    max_message_size: int | None
    spill_dir: str | None
    shm_threshold: int
    address: tuple[str, int] | str | None
    authkey: bytes | str | None
    name: str | None
    db: int
    username: str | None
    password: str | None
    socket: str | None
    tls: bool
    tls_ca: str | None
    tls_cert: str | None
    tls_key: str | None
    tls_verify: bool
    lease: float
    reconnect: float
    joinable: bool | None
    linger: float | None
    prefix: str


def _merge(spec: str | None, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    parsed = parse_spec(spec)
    clash = sorted(set(parsed.options) & set(options))
    if clash:
        raise ConfigError(
            f"option(s) {', '.join(clash)} given both in the spec "
            f"{redact_spec(spec or '')!r} and as keywords"
        )
    return parsed.backend, {**parsed.options, **options}


def _open(spec: str | None, options: dict[str, Any]) -> Channel[Any]:
    backend, merged = _merge(spec, options)
    return get_backend(backend).open(merged)


def _open_half(half: Literal["sender", "receiver"], spec: str, options: dict[str, Any]) -> Any:
    """One half of a channel with an address; backends offer it as ``open_half``."""
    name, merged = _merge(spec, options)
    backend = get_backend(name)
    opener = getattr(backend.factory, "open_half", None)
    if opener is None:
        if backend.features.cross_machine:
            raise ConfigError(
                f"open_{half} does not support the {backend.name!r} backend yet: open the "
                f"channel with open_channel and use its .{half}"
            )
        raise ConfigError(
            f"a {backend.name!r} channel has no address to join it by: use open_channel "
            f"and hand its .{half} to the processes that need it"
        )
    backend.check_refused(merged)
    return opener(half, coerce_options(backend.name, merged, backend.options))


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


@final
class SenderOpener(Generic[T]):
    """``open_sender[T]``: call it to open a ``Sender[T]``."""

    __slots__ = ()

    def __call__(self, spec: str, /, **options: Unpack[ChannelOptions]) -> Sender[T]:
        """Open a counted sender handle on the channel at ``spec``; see ``open_sender``."""
        return _open_half("sender", spec, dict(options))  # type: ignore[no-any-return]


@final
class ReceiverOpener(Generic[T]):
    """``open_receiver[T]``: call it to open a ``Receiver[T]``."""

    __slots__ = ()

    def __call__(self, spec: str, /, **options: Unpack[ChannelOptions]) -> Receiver[T]:
        """Open the receiving half of the channel at ``spec``; see ``open_receiver``."""
        return _open_half("receiver", spec, dict(options))  # type: ignore[no-any-return]


_SENDER_OPENER: SenderOpener[Any] = SenderOpener()
_RECEIVER_OPENER: ReceiverOpener[Any] = ReceiverOpener()


@final
class _OpenSender:
    """Open one counted sender handle on a channel with an address.

    ``open_sender[Job]("redis://host:6379/jobs")`` joins the channel named
    ``jobs`` as a producer; the channel ends once every sender handle ever
    opened on it is closed. On a channel that has ended it raises
    ``ChannelClosed``; on a backend without addresses, ``ConfigError``.
    """

    __slots__ = ()

    @overload
    def __getitem__(self, item_type: type[T], /) -> SenderOpener[T]: ...

    @overload
    def __getitem__(self, item_type: object, /) -> SenderOpener[Any]: ...

    def __getitem__(self, item_type: object, /) -> SenderOpener[Any]:
        return _SENDER_OPENER

    def __call__(self, spec: str, /, **options: Unpack[ChannelOptions]) -> Sender[Any]:
        """Open a sender whose item type is left to inference (``Sender[Any]``)."""
        return _SENDER_OPENER(spec, **options)

    def __repr__(self) -> str:
        return "channels.open_sender"


@final
class _OpenReceiver:
    """Open only the receiving half of a channel with an address.

    It holds no sender handle, so a consumer opened this way sees the end as
    soon as the producers are done; one that joins before any producer waits.
    On a backend without addresses it raises ``ConfigError``.
    """

    __slots__ = ()

    @overload
    def __getitem__(self, item_type: type[T], /) -> ReceiverOpener[T]: ...

    @overload
    def __getitem__(self, item_type: object, /) -> ReceiverOpener[Any]: ...

    def __getitem__(self, item_type: object, /) -> ReceiverOpener[Any]:
        return _RECEIVER_OPENER

    def __call__(self, spec: str, /, **options: Unpack[ChannelOptions]) -> Receiver[Any]:
        """Open a receiver whose item type is left to inference (``Receiver[Any]``)."""
        return _RECEIVER_OPENER(spec, **options)

    def __repr__(self) -> str:
        return "channels.open_receiver"


open_sender: _OpenSender = _OpenSender()
open_receiver: _OpenReceiver = _OpenReceiver()
