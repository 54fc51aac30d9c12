"""``queue``: many producers and consumers, optionally bounded; the default backend."""

from __future__ import annotations

from typing import ClassVar, TypeVar, final

from ..._config import ContextSpec, SerializerSpec
from ..._engine.handles import ChannelBase
from ..._registry import Features
from .core import SHM_THRESHOLD, LocalCore

__all__ = ["QueueChannel"]

T = TypeVar("T")


@final
class QueueChannel(ChannelBase[T]):
    """A channel on ``multiprocessing.Queue``'s parts: a pipe, two locks, a slot semaphore.

    Args:
        maxsize: the most items the channel holds; ``send`` waits while it is full.
            0 (the default) means unbounded: items the pipe cannot take at once
            wait in the channel's overflow file, never in the sender's memory.
        context: the start method (or context) the channel's processes use.
        serializer: ``"pickle"`` (default), ``"json"`` or an object with dumps/loads.
        max_message_size: refuse items whose serialized form is larger (bytes).
        spill_dir: the folder for the overflow file (default: the temp folder).
        joinable: receivers mark each item done with ``task_done()``, and ``join()``
            on the channel or any sender handle waits until every item sent is done.
        shm_threshold: ``bytes`` items, and buffers that pickle protocol 5 keeps apart
            (numpy arrays, ``bytearray``), of at least this many bytes travel through
            shared memory; a received array is then a view of it. 0 turns it off.
    """

    __slots__ = ()
    features: ClassVar[Features] = Features(bounded=True)

    def __init__(
        self,
        *,
        maxsize: int = 0,
        context: ContextSpec = None,
        serializer: SerializerSpec = None,
        max_message_size: int | None = None,
        spill_dir: str | None = None,
        joinable: bool = False,
        shm_threshold: int = SHM_THRESHOLD,
    ) -> None:
        self._attach(
            LocalCore.open(
                "queue",
                maxsize=maxsize,
                context=context,
                serializer=serializer,
                max_message_size=max_message_size,
                spill_dir=spill_dir,
                joinable=joinable,
                shm_threshold=shm_threshold,
            )
        )
