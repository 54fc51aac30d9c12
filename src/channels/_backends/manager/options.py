"""The options of the ``manager`` backend, declared once."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..._codec.serializers import resolve_serializer
from ..._config import (
    ContextSpec,
    Options,
    SerializerSpec,
    check_maxsize,
    check_message_limit,
)
from ..._contexts import resolve_context
from ..._errors import ConfigError
from .manager import ChannelManager

__all__ = ["ManagerOptions"]


@dataclass(frozen=True, kw_only=True)
class ManagerOptions(Options):
    """What a manager channel is opened with.

    Attributes:
        maxsize: the most items the channel holds; ``send`` waits while it is full
            (0: unbounded). A name must be reopened with the maxsize it has.
        context: the start method of the private manager process.
        serializer: ``"pickle"`` (default), ``"json"`` or an object with dumps/loads;
            items travel serialized, so the server never unpickles them.
        max_message_size: refuse items whose serialized form is larger (bytes).
        address: a running server's ``(HOST, PORT)``, ``"HOST:PORT"`` (IPv6 as
            ``"[::1]:PORT"``) or Unix socket path. ``ServerUnreachable`` if nothing
            answers there; ``AuthkeyRejected`` (``AuthkeyMissing`` when this
            process has no key) if it refuses the key.
        authkey: the server's secret; default ``CHANNELS_AUTHKEY``, else this
            process's ``multiprocessing`` authkey.
        name: the channel's name on the server; None: a new anonymous channel.
        manager: a running ``ChannelManager`` to hold the channel (instead of ``address``).
        joinable: receivers mark items done with ``task_done()``; ``join()`` waits for all.
    """

    maxsize: int = 0
    context: ContextSpec = None
    serializer: SerializerSpec = None
    max_message_size: int | None = None
    address: tuple[str, int] | str | None = None
    authkey: bytes | str | None = field(default=None, repr=False)
    name: str | None = None
    manager: ChannelManager | None = None
    joinable: bool = False

    def check(self) -> None:
        check_maxsize(self.maxsize)
        resolve_serializer(self.serializer)
        check_message_limit(self.max_message_size)
        resolve_context(self.context)
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise ConfigError(f"a channel name is a non-empty string, not {self.name!r}")
