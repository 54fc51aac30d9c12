"""The channel classes of the local backends: ``pipe``, ``queue`` and ``simplequeue``.

Each takes its options' fields (``options.py``) as keywords and opens a
``LocalCore``; the three differ in their bound and in the name they give it.
"""

from __future__ import annotations

from typing import ClassVar, TypeVar, final

from ..._config import ContextSpec, SerializerSpec
from ..._engine.channel import ChannelBase
from ..._registry import Features
from .core import LocalCore
from .options import SHM_THRESHOLD, LocalOptions, QueueOptions

__all__ = ["PipeChannel", "QueueChannel", "SimpleQueueChannel"]

T = TypeVar("T")


@final
class QueueChannel(ChannelBase[T]):
    """A channel on ``multiprocessing.Queue``'s parts: a pipe, two locks and a bound.

    Many producers and consumers; the default backend. Its options are
    ``QueueOptions``: ``maxsize`` (0, the default: unbounded, and items the
    pipe cannot take at once wait in the channel's overflow file, never in the
    sender's memory), ``context``, ``serializer``, ``max_message_size``,
    ``spill_dir``, ``joinable`` and ``shm_threshold``.
    """

    __slots__ = ()
    features: ClassVar[Features] = Features(bounded=True)
    options: ClassVar[type[QueueOptions]] = QueueOptions

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
        options = QueueOptions(
            maxsize=maxsize,
            context=context,
            serializer=serializer,
            max_message_size=max_message_size,
            spill_dir=spill_dir,
            joinable=joinable,
            shm_threshold=shm_threshold,
        )
        self._attach(LocalCore.open("queue", options))


@final
class PipeChannel(ChannelBase[T]):
    """A channel on one ``multiprocessing.Pipe(duplex=False)``.

    Built for one producer and one consumer, it still locks, so clones and
    several receivers are safe. A producer that dies without closing gives the
    consumer ``ChannelBroken`` rather than a hang, unlike a bare pipe whose end
    only shows once every inherited copy of its write end is closed. Its
    options are ``LocalOptions`` (those of ``QueueChannel`` but ``maxsize``);
    for request/response between two processes, use ``channels.duplex``.
    """

    __slots__ = ()
    features: ClassVar[Features] = Features()
    options: ClassVar[type[LocalOptions]] = LocalOptions

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
        options = LocalOptions(
            context=context,
            serializer=serializer,
            max_message_size=max_message_size,
            spill_dir=spill_dir,
            joinable=joinable,
            shm_threshold=shm_threshold,
        )
        self._attach(LocalCore.open("pipe", options))


@final
class SimpleQueueChannel(ChannelBase[T]):
    """A channel on ``multiprocessing.SimpleQueue``'s parts: a pipe and two locks.

    Unlike the stdlib ``SimpleQueue`` it has timeouts and an end of channel.
    Its options are ``LocalOptions`` (those of ``QueueChannel`` but ``maxsize``).
    """

    __slots__ = ()
    features: ClassVar[Features] = Features()
    options: ClassVar[type[LocalOptions]] = LocalOptions

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
        options = LocalOptions(
            context=context,
            serializer=serializer,
            max_message_size=max_message_size,
            spill_dir=spill_dir,
            joinable=joinable,
            shm_threshold=shm_threshold,
        )
        self._attach(LocalCore.open("simplequeue", options))
