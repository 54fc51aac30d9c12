"""What the lease thread does for one channel: renew, lease started children, acknowledge at exit.

This process renews its own leases as a sender (each handle it sent on) and as
a receiver, the leases it holds for the children it started with a handle
(while they run), and, in such a child, the ones held for it (see ``lease``).

A child started under spawn or forkserver with a sender handle is leased
(``settle``) once it has a pid: this process and the child both keep that lease
fresh while it runs, so a child that dies at start, before it ever sent, lets
the channel break like any sender. A dead child's lease lapses at once, not at
its end, so receivers see the crash within a slice of its death.
"""

from __future__ import annotations

import logging
import time

from ..._errors import ChannelError
from ..._process.liveness import pid_alive, process_stamp, this_process
from ..._timing import CONNECT_ATTEMPT
from . import scripts as lua
from .calls import Calls
from .client import Arg
from .lease import born_suffix
from .state import Local, ms

__all__ = ["at_exit", "renew", "settle"]

log = logging.getLogger(__name__)


def settle(calls: Calls, local: Local, watch: bool, deadline: float | None) -> None:
    """Lease each child handed a handle that now has a pid; with ``watch``, end dead ones."""
    started = local.handed.started()
    with local.born_lock:
        born = list(local.born.items()) if watch else []
    args: list[Arg] = []
    new: dict[str, tuple[int, int, int]] = {}
    for pid, token in started:
        stamp = process_stamp(pid)
        member = f"{token}{born_suffix(pid, stamp)}"
        alive = pid_alive(pid, stamp)
        args += [token, member, int(alive)]
        if alive:
            new[member] = (token, pid, stamp)
    dead = [(m, token) for m, (token, pid, stamp) in born if not pid_alive(pid, stamp)]
    for member, token in dead:
        args += [token, member, 0]
    if not args:
        return
    try:
        calls.call(lua.BORN, [ms(calls.ref.lease), *args], deadline)
    except ChannelError as exc:  # such a child counts once it sends, as any other
        log.debug("could not take out a lease for a child of %s: %s", repr(calls), str(exc))
        return
    with local.born_lock:
        local.born.update(new)
        for member, _ in dead:
            local.born.pop(member, None)


def renew(calls: Calls, born_here: bool) -> None:
    """Extend the leases this process holds on the channel; wait at most a third of a lease.

    ``born_here``: this process was started with a handle of the channel, and
    keeps the lease its starter took out for it fresh too.
    """
    local = calls.mine()
    if local is None or calls.lost:
        return
    deadline = time.monotonic() + calls.ref.lease / 3
    if local.handed or local.born:
        settle(calls, local, True, deadline)
    members = [f"{t}{local.member_suffix}" for t in list(local.sent_on)]
    with local.born_lock:
        members += local.born
    consumer = local.consumer if local.receiving else ""
    suffix = born_suffix(this_process.pid, this_process.stamp) if born_here else ""
    if members or consumer or suffix:
        calls.call(lua.RENEW, [ms(calls.ref.lease), consumer, suffix, *members], deadline)


def at_exit(calls: Calls, joinable: bool | None) -> None:
    """Acknowledge the items this process took, so none is delivered again."""
    local = calls.mine()
    if local is None or local.ended or calls.lost:
        return
    if local.receiving and not joinable:
        acks: list[Arg] = [local.consumer, *local.held]
        calls.call(lua.CLOSE_RECEIVER, acks, time.monotonic() + CONNECT_ATTEMPT)
        local.held.clear()
        local.receiving = False
