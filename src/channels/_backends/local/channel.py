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
        self._attach(LocalCore.open("queue", QueueOptions.given(locals())))


class _UnboundedChannel(ChannelBase[T]):
    """A local channel with no bound: what ``pipe`` and ``simplequeue`` share."""

    __slots__ = ()
    features: ClassVar[Features] = Features()
    options: ClassVar[type[LocalOptions]] = LocalOptions
    #: The backend's name, which the core's messages and ``repr`` show.
    kind: ClassVar[str]

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
        self._attach(LocalCore.open(self.kind, LocalOptions.given(locals())))


@final
class PipeChannel(_UnboundedChannel[T]):
    """A channel on one ``multiprocessing.Pipe(duplex=False)``.

    Built for one producer and one consumer, it still locks, so clones and
    several receivers are safe. A producer that dies without closing gives the
    consumer ``ChannelBroken`` rather than a hang, unlike a bare pipe whose end
    only shows once every inherited copy of its write end is closed. Its
    options are ``LocalOptions`` (those of ``QueueChannel`` but ``maxsize``);
    for request/response between two processes, use ``channels.duplex``.
    """

    __slots__ = ()
    kind = "pipe"


@final
class SimpleQueueChannel(_UnboundedChannel[T]):
    """A channel on ``multiprocessing.SimpleQueue``'s parts: a pipe and two locks.

    Unlike the stdlib ``SimpleQueue`` it has timeouts and an end of channel.
    Its options are ``LocalOptions`` (those of ``QueueChannel`` but ``maxsize``).
    """

    __slots__ = ()
    kind = "simplequeue"
