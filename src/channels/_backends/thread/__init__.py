"""``thread``: a channel between the threads and asyncio tasks of one process.

The core (``core``) keeps items as they were sent in a deque under one lock;
the handles (``handles``) move an item in a few statements and wait through
the engine's shared loop; the channel class (``channel``) joins them.
"""

from .channel import ThreadChannel

__all__ = ["ThreadChannel"]
