"""The options of the ``thread`` backend, declared once, and those it refuses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..._config import Options, check_maxsize

__all__ = ["REFUSED", "ThreadOptions"]


@dataclass(frozen=True, kw_only=True)
class ThreadOptions(Options):
    """What a thread channel is opened with.

    Attributes:
        maxsize: the most items the channel holds; ``send`` waits while it is full.
            0 (the default) means unbounded.
        joinable: receivers mark each item done with ``task_done()``, and ``join()``
            on the channel or any sender handle waits until every item sent is done.
    """

    maxsize: int = 0
    joinable: bool = False

    def check(self) -> None:
        check_maxsize(self.maxsize)


#: Options other backends take that a thread channel cannot honour, and why.
REFUSED: Mapping[str, str] = {
    key: f"{why}; for channels between processes use a process backend such as 'queue'"
    for key, why in {
        "serializer": "it passes items by reference and serializes nothing",
        "max_message_size": "it serializes nothing, so items have no size to limit",
        "shm_threshold": "it passes items by reference, never through shared memory",
        "spill_dir": "it keeps its items in memory, never in a file",
        "context": "it never reaches another process, so it has no start method",
    }.items()
}
