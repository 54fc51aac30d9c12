"""``pipe``: a ``multiprocessing.Pipe``, the shortest path from one process to another."""

from __future__ import annotations

from typing import ClassVar, TypeVar, final

from ..._config import ContextSpec, SerializerSpec
from ..._engine.handles import ChannelBase
from ..._registry import Features
from .core import SHM_THRESHOLD, LocalCore

__all__ = ["PipeChannel"]

T = TypeVar("T")


@final
class PipeChannel(ChannelBase[T]):
    """A channel on one ``multiprocessing.Pipe(duplex=False)``.

    Built for one producer and one consumer, it still locks, so clones and
    several receivers are safe. A producer that dies without closing gives the
    consumer ``ChannelBroken`` rather than a hang, unlike a bare pipe whose end
    only shows once every inherited copy of its write end is closed. It takes
    the options of ``QueueChannel`` except ``maxsize``; for request/response
    between two processes, use ``channels.duplex``.
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
                "pipe",
                context=context,
                serializer=serializer,
                max_message_size=max_message_size,
                spill_dir=spill_dir,
                joinable=joinable,
                shm_threshold=shm_threshold,
            )
        )
