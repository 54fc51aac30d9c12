"""Time as the library reads it: every span it waits by itself, and users' timeouts.

Each constant is in seconds, with what waits that long and why. A user's
timeout is checked by one rule and becomes a deadline on the monotonic clock.
The module imports nothing of the library but its errors, so the pool and the
command line read it without loading the channel engine.
"""

from __future__ import annotations

import math
import time

from ._errors import ConfigError

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


# -- Waiting on a channel, in this process -----------------------------------------------

#: The longest one pause lasts, so a closed receiver or a signal is noticed soon.
WAIT_SLICE = 0.25

#: How long a ``*_nowait`` call may wait for a lock another thread or process holds
#: for one item (one preempted while it holds it), before it raises ``WouldBlock``.
NOWAIT_LOCK = 0.005

#: How often ``join`` looks at the count of unfinished items.
JOIN_SLICE = 0.01

#: How long past its deadline a step of a core that keeps deadlines may take to answer.
STEP_GRACE = 1.0

#: How long past its deadline any other core's step may take: one round trip on a busy host.
STEP_ROUND_TRIP = 0.05

#: How long a round waits when some receiver has no descriptor to wait on.
SELECT_SLICE = 0.01

#: How long a helper thread waits for another call before it ends.
HELPER_IDLE_EXIT = 10.0

#: A bounded wait, so a waiting thread still runs signal handlers (Ctrl-C) regularly.
LOCK_SLICE = 0.05


# -- Talking to a server -----------------------------------------------------------------

#: How long one connection attempt may take before the server counts as unreachable.
CONNECT_ATTEMPT = 1.0

#: How long one reply may take; a blocking read asks for much less than this.
SOCKET_TIMEOUT = 10.0

#: How long a call with no nearer deadline waits for one reply before it takes the
#: connection for lost and asks again on a new one (every call is safe to repeat). A request
#: that a middlebox swallowed then costs this long, not the whole call.
REPLY_TIMEOUT = 2.0

#: The shortest wait for a reply, even when the caller's deadline is nearer: a call
#: that gives up sooner would lose replies that are merely a little slow.
REPLY_FLOOR = 0.1

#: How much longer than its own block a blocking read may take to answer.
BLOCK_GRACE = 0.5

#: How long connecting to a server and proving the key may take.
CONNECT_TIMEOUT = 10.0

#: How much longer than its own wait a server may take to answer before it counts as gone.
REPLY_GRACE = 20.0

#: The least time a call is given for its answer, even when its deadline is nearer or past.
MIN_ANSWER = 0.05

#: The longest a server call waits before answering "not yet" (the client asks again).
ANSWER_WINDOW = 2.0

#: How long an unauthenticated connection may take to prove the key, in all.
HANDSHAKE_TIMEOUT = 10.0

#: How long a handshake is safe from being pushed out by a newer one.
HANDSHAKE_HEAD = 0.5


# -- The pool and `channels worker` ------------------------------------------------------

#: How long terminated workers get to exit before they are killed outright.
TERMINATE_GRACE = 1.0

#: How often the workers' exit status is polled, besides watching their sentinels.
SWEEP_INTERVAL = 0.5

#: The longest wait to reap a worker seen to exit (its sentinel fires as it exits).
REAP_WAIT = 0.05

#: Auto chunk size: aim for chunks that take about this long in a worker...
CHUNK_SECONDS = 0.02

#: ... and, as the input runs out, no less than this (a round trip costs ~0.1-0.3 ms).
CHUNK_MIN_SECONDS = 0.002

#: Report at most this often, besides the first and the last report.
PROGRESS_INTERVAL = 0.1

#: How often a map with a progress report looks at the results that came.
PROGRESS_LOOK = 0.1

#: How often a finished call's waiter looks whether the thread running its callback ended.
CALLBACK_LOOK = 0.1

#: How often an idle or blocked stream worker checks whether it should stop.
STREAM_POLL = 0.1

#: How long terminate() lets stream workers stop by themselves before killing them.
STREAM_STOP_GRACE = 1.0

#: How often a slot waiting for an item or a result looks whether it should stop.
RELAY_POLL = 0.1

#: About how long one batch of ``channels worker`` should keep its worker busy.
RELAY_BATCH_SECONDS = 0.05

#: How often an idle worker looks whether its parent is gone (it then exits).
ORPHAN_CHECK = 0.5

#: Seconds between two progress lines (only when something changed).
WORKER_PROGRESS_EVERY = 1.0

#: How long a stop lets the items being run finish before their workers are killed.
WORKER_STOP_GRACE = 1.0
