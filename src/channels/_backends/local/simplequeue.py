"""``simplequeue``: a locked pipe, as ``multiprocessing.SimpleQueue``, never bounded."""

from __future__ import annotations

from typing import ClassVar, TypeVar, final

from ..._config import ContextSpec, SerializerSpec
from ..._engine.handles import ChannelBase
from ..._registry import Features
from .core import SHM_THRESHOLD, LocalCore

__all__ = ["SimpleQueueChannel"]

T = TypeVar("T")


@final
class SimpleQueueChannel(ChannelBase[T]):
    """A channel on ``multiprocessing.SimpleQueue``'s parts: a pipe and two locks.

    Unlike the stdlib ``SimpleQueue`` it has timeouts and an end of channel. It
    takes the options of ``QueueChannel`` except ``maxsize``.
    """

    __slots__ = ()
    features: ClassVar[Features] = Features()

    def __init__(
        self,
        *,
        context: ContextSpec = None,
        serializer: SerializerSpec = None,
        max_message_size: int | None = None,
        spill_dir: str | None = None,
        joinable: bool = False,
        shm_threshold: int = SHM_THRESHOLD,
    ) -> None:
        self._attach(
            LocalCore.open(
                "simplequeue",
                context=context,
                serializer=serializer,
                max_message_size=max_message_size,
                spill_dir=spill_dir,
                joinable=joinable,
                shm_threshold=shm_threshold,
            )
        )
