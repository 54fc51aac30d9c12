"""Timeouts as the library reads them: one rule for checking them, deadlines on the monotonic clock.

Kept apart from ``contract`` so that the pool, which needs only this, does not
import what a channel needs.
"""

from __future__ import annotations

import math
import time

from .._errors import ConfigError

__all__ = ["POLL_SLICE", "deadline_after", "remaining"]

#: How often a blocked call wakes to look for dead peers, in seconds. It bounds
#: how long a crash can go unnoticed; idle wake-ups cost next to nothing.
POLL_SLICE = 0.05


def deadline_after(timeout: float | None) -> float | None:
    """Turn a user's timeout into a ``time.monotonic()`` deadline, checking it.

    The one rule for every timeout the library takes: None waits for ever; a
    number of seconds >= 0; anything else is a ``ConfigError``.
    """
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
