"""``redis`` and ``rediss``: channels in a Redis or Valkey server, across machines.

The package holds the channel class (``channel``) and its options, checked
once (``options``); the core every handle calls (``core``), what it pickles and
keeps per process (``state``) and its script calls (``calls``); the bookkeeping
as Lua scripts (``scripts``); the connection settings (``connection``) and the
one retry policy (``client``); the lease thread (``lease``) and what it does for
each channel (``renewal``). It imports without redis-py; opening a channel
without it raises ``ConfigError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal, final

from ..._engine.receiver import ReceiverHandle
from ..._engine.sender import SenderHandle
from ..._registry import Features
from .channel import RedisChannel
from .options import RedisOptions

__all__ = ["RedisChannel", "rediss"]


@final
class _OverTLS:
    """The ``rediss`` backend: ``RedisChannel`` with ``tls=True``, taking the same options."""

    features: ClassVar[Features] = RedisChannel.features
    options: ClassVar[type[RedisOptions]] = RedisOptions

    def __call__(self, **options: Any) -> RedisChannel[Any]:
        options["tls"] = True
        return RedisChannel[Any](**options)

    def open_half(
        self, half: Literal["sender", "receiver"], options: Mapping[str, object]
    ) -> SenderHandle[Any] | ReceiverHandle[Any]:
        return RedisChannel.open_half(half, {**options, "tls": True})


rediss = _OverTLS()
