"""Which state of a channel raises which error, with which message: decided once.

Every backend asks these functions, in whatever process holds its books (a
client, or a manager server), so the same state gives the same error
everywhere.
"""

from __future__ import annotations

from typing import NoReturn

from .._errors import (
    ChannelBroken,
    ChannelClosed,
    ChannelError,
    ChannelTimeout,
    EndOfChannel,
    WouldBlock,
)
from .ledger import BROKEN, ENDED, Ledger

__all__ = [
    "check_clonable",
    "check_sendable",
    "closed_receiver",
    "full",
    "lost_unfinished",
    "not_joinable",
    "nothing_left",
    "nothing_ready",
    "nothing_to_mark",
    "timed_out",
]


def check_sendable(ledger: Ledger, token: int) -> None:
    """Raise unless handle ``token`` may send now."""
    if not ledger.is_open(token):
        raise ChannelClosed("this sender handle is closed")
    if ledger.flags & BROKEN:
        raise ChannelBroken(ledger.broken_reason)


def check_clonable(ledger: Ledger, token: int) -> None:
    """Raise unless handle ``token`` is open, so it may be cloned."""
    if not ledger.is_open(token):
        raise ChannelClosed("cannot clone a closed sender handle")


def nothing_left(ledger: Ledger, flags: int | None = None) -> None:
    """With no item to take: raise if none can come any more (the end, or a break).

    ``flags``: the ledger's flags as read *before* the caller found the channel
    empty, where senders do not share its lock. An item committed before the end
    was stored is then certain to have been seen; flags read after the look could
    show an end whose last items the look missed.
    """
    if flags is None:
        flags = ledger.flags
    if flags & ENDED:
        raise EndOfChannel("every sender closed and the channel is drained")
    if flags & BROKEN:
        raise ChannelBroken(ledger.broken_reason)


def full() -> NoReturn:
    raise WouldBlock("the channel is full")


def nothing_ready() -> NoReturn:
    raise WouldBlock("no item is ready")


def closed_receiver() -> NoReturn:
    raise ChannelClosed("this receiver is closed")


def not_joinable(call: str) -> NoReturn:
    raise ChannelError(f"{call} needs a channel opened with joinable=True")


def nothing_to_mark() -> NoReturn:
    raise ChannelError("task_done() called more times than items were received")


def lost_unfinished(count: int) -> NoReturn:
    raise ChannelBroken(
        f"a receiver died holding {count} item(s) it had not marked done; they are lost"
    )


def timed_out(sending: bool, sent: int = 0) -> ChannelTimeout:
    """The error for a deadline that passed while sending or receiving."""
    if sending:
        return ChannelTimeout("the channel stayed full until the timeout", sent=sent)
    return ChannelTimeout("no item arrived before the timeout")
