"""``ThreadChannel``: both halves of a ``thread`` channel, and the options it refuses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Never, NoReturn, TypeVar, final

from ..._engine.channel import ChannelBase
from ..._errors import ConfigError
from ..._registry import Features
from .core import FIRST, ThreadCore, cannot_cross
from .handles import ThreadReceiver, ThreadSender
from .options import REFUSED, ThreadOptions

__all__ = ["ThreadChannel"]

# Invariant: a channel both takes and gives T.
T = TypeVar("T")


@final
class ThreadChannel(ChannelBase[T]):
    """A channel between the threads and asyncio tasks of one process.

    Items are passed by reference: the receiver gets the very object that was
    sent, and nothing is serialized. A sync thread and an asyncio task may share
    it, each waiting in its own way (a blocked thread sleeps until it is woken, a
    task on its event loop). It cannot cross to another process.

    Args:
        maxsize: the most items the channel holds; ``send`` waits while it is full.
            0 (the default) means unbounded.
        joinable: receivers mark each item done with ``task_done()``, and ``join()``
            on the channel or any sender handle waits until every item sent is done.
    """

    __slots__ = ()
    features: ClassVar[Features] = Features(bounded=True)
    options: ClassVar[type[ThreadOptions]] = ThreadOptions
    refused: ClassVar[Mapping[str, str]] = REFUSED

    def __init__(self, *, maxsize: int = 0, joinable: bool = False, **refused: Never) -> None:
        if refused:  # only untyped callers get here: the type checker refuses them
            key = sorted(refused)[0]
            why = self.refused.get(key, "it takes only maxsize and joinable")
            raise ConfigError(f"a thread channel does not take the option {key!r}: {why}")
        options = ThreadOptions.given(locals())
        core = ThreadCore(options.maxsize, bool(options.joinable))
        self._attach_halves(ThreadSender[T](core, FIRST), ThreadReceiver[T](core))

    def __reduce__(self) -> NoReturn:
        cannot_cross("a thread channel cannot be pickled")
