"""Which state of a channel raises which error, with which message: decided once.

A state that a call cannot get past is a ``Condition``: small data that any
process can hold, send or compute, so that engines in other processes report
it instead of raising it. A manager server answers a condition to its client;
a Redis script can return its number. ``error(condition, *details)`` turns it
into the exception to raise, the same in every backend:

===================  ==============================  ================================
Condition            details                         raises
===================  ==============================  ================================
``SENDER_CLOSED``                                    ``ChannelClosed``
``CLONE_CLOSED``                                     ``ChannelClosed``
``RECEIVER_CLOSED``                                  ``ChannelClosed``
``SENDER_REFUSED``   name, kept (bool), note = ""    ``ChannelClosed``
``ENDED``                                            ``EndOfChannel``
``BROKEN``           ``Broken`` reason, note = ""    ``ChannelBroken``
``LOST_UNFINISHED``  how many items                  ``ChannelBroken``
``FULL``                                             ``WouldBlock``
``NOTHING_READY``                                    ``WouldBlock``
``TIMED_OUT``        sending (bool), sent = 0        ``ChannelTimeout``
``NOT_JOINABLE``     the call, as ``"join()"``       ``ChannelError``
``OVER_MARKED``                                      ``ChannelError``
``NO_CHANNEL``       the channel's id                ``ChannelError``
``MISMATCH``         name, then option, the          ``ConfigError``
                     channel's, asked, for each one
===================  ==============================  ================================

The engines that report conditions: the local core (in the calling process),
a manager server (answered to its client), and a redis channel's scripts
(whose statuses its core reads as conditions: ``end``, ``closed``,
``broken`` and ``options``, and lost data, ``Broken.DATA_LOST``).

An error made by ``error`` remembers its condition (``condition_of``), so a
process that answers for another sends the condition, not the exception, and
the process that asked raises ``error_from`` what came.
The ``check_*`` functions and the short helpers below raise the usual cases
for the engines that hold a ``Ledger`` or a queue in the calling process.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NoReturn, TypeVar, cast

from .._errors import (
    ChannelBroken,
    ChannelClosed,
    ChannelError,
    ChannelTimeout,
    ConfigError,
    EndOfChannel,
    WouldBlock,
)
from .ledger import BROKEN, ENDED, Ledger

__all__ = [
    "Broken",
    "Condition",
    "Detail",
    "broken_reason",
    "check_clonable",
    "check_sendable",
    "closed_receiver",
    "condition_of",
    "error",
    "error_from",
    "full",
    "lost_unfinished",
    "not_joinable",
    "nothing_left",
    "nothing_ready",
    "nothing_to_mark",
    "timed_out",
]

#: One detail of a condition: plain data that pickles anywhere, and fits a Lua reply.
Detail = int | str | bool


class Condition(IntEnum):
    """A state of a channel that a call cannot get past (see the module docstring)."""

    SENDER_CLOSED = 1
    CLONE_CLOSED = 2
    RECEIVER_CLOSED = 3
    SENDER_REFUSED = 4
    ENDED = 5
    BROKEN = 6
    LOST_UNFINISHED = 7
    FULL = 8
    NOTHING_READY = 9
    TIMED_OUT = 10
    NOT_JOINABLE = 11
    OVER_MARKED = 12
    NO_CHANNEL = 13
    MISMATCH = 14


class Broken(IntEnum):
    """Why a channel broke: the reason a ``Ledger`` records, and ``BROKEN``'s first detail."""

    SENDERS_GONE = 1
    RECEIVERS_GONE = 2
    TORN = 3
    SERVER_GONE = 4
    DATA_LOST = 5
    GIVEN_UP = 6


_WHY: dict[int, str] = {
    Broken.SENDERS_GONE: (
        "every process that sent on an open sender handle has died without closing it"
    ),
    Broken.RECEIVERS_GONE: "every process that received from the channel has died",
    Broken.TORN: "a process died in the middle of reading or writing an item",
    Broken.SERVER_GONE: "the server holding the channel is gone",
    Broken.DATA_LOST: (
        "the server lost the channel's data (restarted without persistence, flushed, "
        "restored from an older snapshot, or failed over to a replica that lagged): "
        "items may be gone"
    ),
    Broken.GIVEN_UP: "a program that served the channel gave up on it",
}

_FIXED: dict[Condition, tuple[type[ChannelError], str]] = {
    Condition.SENDER_CLOSED: (ChannelClosed, "this sender handle is closed"),
    Condition.CLONE_CLOSED: (ChannelClosed, "cannot clone a closed sender handle"),
    Condition.RECEIVER_CLOSED: (ChannelClosed, "this receiver is closed"),
    Condition.ENDED: (EndOfChannel, "every sender closed and the channel is drained"),
    Condition.FULL: (WouldBlock, "the channel is full"),
    Condition.NOTHING_READY: (WouldBlock, "no item is ready"),
    Condition.OVER_MARKED: (
        ChannelError,
        "task_done() called more times than items were received",
    ),
}


def broken_reason(why: int) -> str:
    """The words for a channel broken for reason ``why`` (a ``Broken``)."""
    return _WHY.get(why, "the channel is broken")


def error(condition: Condition, *details: Detail) -> ChannelError:
    """The exception for ``condition`` with its ``details`` (see the module docstring)."""
    return _remember(_make(condition, details), condition, details)


def condition_of(exc: BaseException) -> tuple[int, tuple[Detail, ...]] | None:
    """The condition and details ``exc`` was made from by ``error``; None for any other error."""
    found: tuple[int, tuple[Detail, ...]] | None = getattr(exc, _KEY, None)
    return found


def error_from(report: object) -> ChannelError:
    """The error for a condition sent from another process as ``condition_of`` gives it."""
    parts = cast("tuple[object, ...]", report) if isinstance(report, tuple) else ()
    if len(parts) == 2 and isinstance(parts[0], int) and isinstance(parts[1], tuple):
        details = cast("tuple[object, ...]", parts[1])
        if parts[0] in _CONDITIONS and all(isinstance(d, int | str) for d in details):
            return error(Condition(parts[0]), *cast("tuple[Detail, ...]", details))
    return ChannelError(f"an unknown condition: {report!r}")


_CONDITIONS = frozenset(Condition)
_KEY = "_channels_condition"

_E = TypeVar("_E", bound=ChannelError)


def _remember(exc: _E, condition: Condition, details: tuple[Detail, ...]) -> _E:
    setattr(exc, _KEY, (int(condition), details))
    return exc


def _make(condition: Condition, details: tuple[Detail, ...]) -> ChannelError:
    fixed = _FIXED.get(condition)
    if fixed is not None:
        return fixed[0](fixed[1])
    match condition, details:
        case Condition.BROKEN, (int() as why, *rest):
            note = f" ({rest[0]})" if rest and rest[0] else ""
            return ChannelBroken(_WHY.get(why, "the channel is broken") + note)
        case Condition.BROKEN, ():
            return ChannelBroken("the channel is broken")
        case Condition.LOST_UNFINISHED, (int() as count,):
            return ChannelBroken(
                f"a receiver died holding {count} item(s) it had not marked done; they are lost"
            )
        case Condition.TIMED_OUT, (bool() as sending, *rest):
            return _timeout(sending, rest[0] if rest and isinstance(rest[0], int) else 0)
        case Condition.NOT_JOINABLE, (str() as call,):
            return ChannelError(f"{call} needs a channel opened with joinable=True")
        case Condition.SENDER_REFUSED, (str() as name, bool() as kept, *rest):
            refused = f"channel {name!r} has ended: no sender can be opened on it"
            if kept:
                refused += " (its name names a new channel once every process that used it is gone)"
            if rest and rest[0]:
                refused += f" ({rest[0]})"
            return ChannelClosed(refused)
        case Condition.NO_CHANNEL, (int() as cid,):
            return ChannelError(f"this server holds no channel {cid}")
        case Condition.MISMATCH, (str() as name, *checked) if len(checked) % 3 == 0:
            options = [checked[i : i + 3] for i in range(0, len(checked), 3)]
            has = ", ".join(f"{option}={known}" for option, known, _ in options)
            asked = ", ".join(f"{option}={wanted}" for option, _, wanted in options)
            return ConfigError(
                f"channel {name!r} exists with {has}; open it with those (it was asked for {asked})"
            )
        case _:
            return ChannelError(f"the channel is in state {condition.name} {details!r}")


def _timeout(sending: bool, sent: int) -> ChannelTimeout:
    if sending:
        return ChannelTimeout("the channel stayed full until the timeout", sent=sent)
    return ChannelTimeout("no item arrived before the timeout")


def check_sendable(ledger: Ledger, token: int) -> None:
    """Raise unless handle ``token`` may send now."""
    if not ledger.is_open(token):
        raise error(Condition.SENDER_CLOSED)
    if ledger.flags & BROKEN:
        raise error(Condition.BROKEN, ledger.broken_why)


def check_clonable(ledger: Ledger, token: int) -> None:
    """Raise unless handle ``token`` is open, so it may be cloned."""
    if not ledger.is_open(token):
        raise error(Condition.CLONE_CLOSED)


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
        raise error(Condition.ENDED)
    if flags & BROKEN:
        raise error(Condition.BROKEN, ledger.broken_why)


def full() -> NoReturn:
    # The two hot paths of every *_nowait loop never leave the process: raised plain.
    kind, text = _FIXED[Condition.FULL]
    raise kind(text)


def nothing_ready() -> NoReturn:
    kind, text = _FIXED[Condition.NOTHING_READY]
    raise kind(text)


def closed_receiver() -> NoReturn:
    raise error(Condition.RECEIVER_CLOSED)


def not_joinable(call: str) -> NoReturn:
    raise error(Condition.NOT_JOINABLE, call)


def nothing_to_mark() -> NoReturn:
    raise error(Condition.OVER_MARKED)


def lost_unfinished(count: int) -> NoReturn:
    raise error(Condition.LOST_UNFINISHED, count)


def timed_out(sending: bool, sent: int = 0) -> ChannelTimeout:
    """The error for a deadline that passed while sending or receiving."""
    return _remember(_timeout(sending, sent), Condition.TIMED_OUT, (sending, sent))
