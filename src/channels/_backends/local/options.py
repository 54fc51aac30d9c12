"""The options of the local backends, declared once: ``pipe`` and ``simplequeue`` take
``LocalOptions``, ``queue`` takes ``QueueOptions`` (the same and ``maxsize``)."""

from __future__ import annotations

from dataclasses import dataclass

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

__all__ = ["SHM_THRESHOLD", "LocalOptions", "QueueOptions"]

#: The default of ``shm_threshold``: from this size on, a buffer travels through shared
#: memory (``channels bench`` measures the crossover).
SHM_THRESHOLD = 1 << 20


@dataclass(frozen=True, kw_only=True)
class LocalOptions(Options):
    """What a local channel is opened with.

    Attributes:
        context: the start method (or context) the channel's processes use; the
            channel's parts work under every one, so this only checks the name.
        serializer: ``"pickle"`` (default), ``"json"`` or an object with dumps/loads.
        max_message_size: refuse items whose serialized form is larger (bytes).
        spill_dir: the folder for the overflow file (default: the temp folder).
        joinable: receivers mark each item done with ``task_done()``, and ``join()``
            on the channel or any sender handle waits until every item sent is done.
        shm_threshold: ``bytes`` items, and buffers that pickle protocol 5 keeps apart
            (numpy arrays, ``bytearray``), of at least this many bytes travel through
            shared memory; a received array is then a view of it. 0 turns it off.
    """

    context: ContextSpec = None
    serializer: SerializerSpec = None
    max_message_size: int | None = None
    spill_dir: str | None = None
    joinable: bool = False
    shm_threshold: int = SHM_THRESHOLD

    @property
    def bound(self) -> int:
        """The most items the channel holds; 0: unbounded."""
        return 0

    def check(self) -> None:
        resolve_context(self.context)
        resolve_serializer(self.serializer)
        check_message_limit(self.max_message_size)
        threshold = self.shm_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int):
            raise ConfigError(f"shm_threshold must be a number of bytes, not {threshold!r}")
        if threshold < 0:
            raise ConfigError(f"shm_threshold must be >= 0 (0: never), not {threshold}")


@dataclass(frozen=True, kw_only=True)
class QueueOptions(LocalOptions):
    """``LocalOptions`` and ``maxsize``.

    Attributes:
        maxsize: the most items the channel holds; ``send`` waits while it is full.
            0 (the default) means unbounded: items the pipe cannot take at once
            wait in the channel's overflow file, never in the sender's memory.
    """

    maxsize: int = 0

    @property
    def bound(self) -> int:
        return self.maxsize

    def check(self) -> None:
        check_maxsize(self.maxsize)
        super().check()
