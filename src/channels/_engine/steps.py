"""Named points inside the channel protocols, where a test can stop a process.

Each protocol calls ``step(NAME)`` between the stores that change shared state.
Normally ``step`` is None and the call site's ``if step:`` costs one global
load. A fault-injection test installs a function (``pause_at``) in a child, so
the child stops itself with SIGSTOP at a chosen point; the test then kills it
there with SIGKILL and checks what the survivors see. Every name is listed in
``POINTS``, so the tests cover each one.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

__all__ = ["POINTS", "pause_at", "step"]

#: Every point, by the lock it is taken under: the order inside each protocol.
POINTS = {
    "send": (
        "send:locked",  # the write lock is held, nothing changed yet
        "send:written",  # the item is in the pipe or committed to the overflow
        "send:counted",  # _SENT counts it
    ),
    "overflow-append": (
        "overflow:frame-written",  # the bytes are in the file, not yet committed
    ),
    "overflow-grow": (
        "overflow:jump-marked",  # the writer's torn marker is set
        "overflow:ring-moved",  # the writer's ring words point at the new ring
    ),
    "shm": (
        "shm:shipped",  # a large item's memory is in the side socket, its ticket not yet put
        "shm:redeeming",  # a receiver took a ticket, not yet the memory it names
    ),
    "recv": (
        "recv:locked",  # the read lock is held, nothing changed yet
        "recv:taking",  # _TAKING is set
        "recv:taken",  # the item left the pipe or the overflow
        "recv:counted",  # _RECEIVED counts it
        "recv:empty",  # nothing was found; whether the channel ended is not decided yet
    ),
    "close": (
        "close:slot-closed",  # the handle's slot says closed
        "close:count-lowered",  # the open count is one lower
        "close:forgotten",  # its senders are forgotten
    ),
    "clone": (
        "clone:slot-opened",  # a new slot says open
        "clone:count-raised",  # the open count is one higher
    ),
}

#: Called with a point's name at that point; None (the default) outside tests.
step: Callable[[str], None] | None = None


def pause_at(point: str, nth: int = 1) -> None:
    """Make this process stop itself (SIGSTOP) the ``nth`` time it reaches ``point``."""
    if not any(point in names for names in POINTS.values()):
        raise ValueError(f"no such point: {point!r}")
    seen = 0

    def hook(name: str) -> None:
        nonlocal seen
        if name == point:
            seen += 1
            if seen == nth:
                os.kill(os.getpid(), signal.SIGSTOP)

    global step
    step = hook
