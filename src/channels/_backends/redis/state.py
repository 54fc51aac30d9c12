"""What names a redis channel anywhere, and what one process keeps for it.

What a core pickles is a ``Ref`` (the server without credentials, the channel's
name and options) with the channel's epoch and the highest version seen (see
``calls``), so a handle anywhere notices that the server lost the channel.
Everything tied to one process (connections, this process's receiver name,
the items it holds unacknowledged, sequence numbers of its puts) lives in a
``Local`` rebuilt in each process.

New handles carry tokens chosen here, so opening one again after a lost reply
is harmless.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field

from ..._process.handover import Handed
from . import scripts as lua
from .client import Client
from .connection import Server
from .lease import process_name

__all__ = ["Local", "Ref", "ms", "new_token"]

_serials = itertools.count(1)


@dataclass(frozen=True)
class Ref:
    """What names one redis channel anywhere: all a core pickles (never a password)."""

    server: Server
    name: str
    prefix: str
    first: int
    lease: float
    reconnect: float
    keys: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        base = f"{self.prefix}:{{{self.name}}}:"
        object.__setattr__(self, "keys", tuple(base + key for key in lua.KEY_NAMES))


class Local:
    """One core's state in one process."""

    def __init__(self, server: Server, reconnect: float) -> None:
        self.client = Client(server, reconnect)
        serial = next(_serials)
        self.consumer = f"{process_name()}/{serial}"
        self.member_suffix = f"|{process_name()}/{serial}"
        self.held: deque[bytes] = deque()  # ids taken and not yet acknowledged, oldest first
        self.backlog: deque[tuple[bytes, bytes]] = deque()
        #: The next sequence number of each sender handle's puts (see ``core``).
        self.next_seq: dict[int, int] = {}
        #: A put whose reply was lost, per handle: (its first sequence number, how many).
        self.unsure: dict[int, tuple[int, int]] = {}
        self.sent_on: set[int] = set()
        self.closed: set[int] = set()
        self.receiving = False
        self.recover = False
        self.ended = False
        #: The highest item number this receiver was handed as new.
        self.last_new = 0
        self.sent_mark = b"0"
        self.bell_mark = b"0"
        #: The channel's maxsize as the last take saw it (-1: no such channel yet).
        self.maxsize = -1
        self.want = 1
        self.take_lock = threading.Lock()
        self.put_lock = threading.Lock()
        # Children being started with a handle until they have a pid; then the leases
        # held for them while they run: member -> (token, pid, start time).
        self.handed = Handed()
        self.born: dict[str, tuple[int, int, int]] = {}
        self.born_lock = threading.Lock()  # the lease thread settles them too


def new_token() -> int:
    """A handle token chosen here, so that opening it again after a lost reply is harmless."""
    return secrets.randbits(62) | 1


def ms(seconds: float) -> int:
    """Seconds as the whole milliseconds the scripts take (at least 1)."""
    return max(1, round(seconds * 1000))
