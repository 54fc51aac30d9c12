"""``CoreBase``: what every process backend's core holds alike."""

from __future__ import annotations

from .._codec.serializers import Serializer

__all__ = ["CoreBase"]


class CoreBase:
    """The codec settings a core was opened with, as the ``Core`` protocol reads them.

    A core that moves large buffers apart (the local backends) overrides
    ``shm_threshold``; every other core moves bytes only.
    """

    __slots__ = ("_limit", "_serializer")

    def __init__(self, serializer: Serializer, max_message_size: int | None) -> None:
        self._serializer = serializer
        self._limit = max_message_size

    @property
    def serializer(self) -> Serializer:
        return self._serializer

    @property
    def max_message_size(self) -> int | None:
        return self._limit

    @property
    def shm_threshold(self) -> int:
        return 0
