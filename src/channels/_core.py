"""The interface between the handles users hold and the transport that moves bytes.

A *core* is one channel's shared state and transport. Handles (``_handles``)
serialize items, turn timeouts into deadlines and keep the per-process state;
a core moves opaque byte strings and keeps the books in a ``Ledger``. Each
backend supplies a core; everything above it is written once.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

from ._errors import ConfigError
from ._serialize import Serializer

__all__ = ["POLL_SLICE", "Core", "deadline_after", "remaining"]

#: How often a blocked call wakes to look for dead peers, in seconds. It bounds
#: how long a crash can go unnoticed; idle wake-ups cost next to nothing.
POLL_SLICE = 0.05


class Core(Protocol):
    """One channel's transport and books, shared by all its handles in a process."""

    @property
    def serializer(self) -> Serializer: ...

    @property
    def max_message_size(self) -> int | None: ...

    @property
    def first_token(self) -> int:
        """The token of the channel's own sender handle."""
        ...

    def send(
        self, token: int, data: bytes | memoryview, deadline: float | None, block: bool
    ) -> None:
        """Put one serialized item in the channel on behalf of handle ``token``."""
        ...

    def recv(self, deadline: float | None, block: bool) -> bytes | memoryview:
        """Take the next serialized item out of the channel."""
        ...

    def clone(self, token: int) -> int:
        """Open a new sender handle, provided ``token`` is still open."""
        ...

    def close_sender(self, token: int) -> None:
        """Close handle ``token`` everywhere; the last close ends the channel."""
        ...

    def sender_open(self, token: int) -> bool:
        """Whether handle ``token`` is open."""
        ...

    def close_receiver(self) -> None:
        """Forget this process as a receiver."""
        ...


def deadline_after(timeout: float | None) -> float | None:
    """Turn a user's timeout into a ``time.monotonic()`` deadline, checking it."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or math.isnan(timeout):
        raise ConfigError(f"timeout must be a number of seconds or None, not {timeout!r}")
    if timeout < 0:
        raise ConfigError(f"timeout must not be negative, got {timeout!r}")
    return time.monotonic() + timeout


def remaining(deadline: float | None, cap: float = POLL_SLICE) -> float:
    """Seconds to wait now: at most ``cap``, less if the deadline is nearer (never negative)."""
    if deadline is None:
        return cap
    return max(0.0, min(cap, deadline - time.monotonic()))
