"""The close and end-of-channel bookkeeping every backend shares.

A ``Ledger`` is a view over an array of 64-bit integers that lives wherever the
channel's processes can all see it: a shared memory page for the local backends,
a plain array inside the server for the manager backend. It records

* the sender handles: a table of slots, each with a generation number, so a
  handle is the same object in every process and closing it twice counts once;
* which processes have sent on each open handle, and which have received, so a
  crash (every sender gone without closing) is told apart from a clean end;
* the channel's flags: ended (every handle closed) and broken (a peer died).

The ledger only keeps the books. Callers serialise every mutation with the
lock that also orders their writes into the channel, so that "ended" is never
set while an item is half written; reads of single words are atomic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .._errors import ChannelError
from . import steps as _steps

__all__ = ["BROKEN", "ENDED", "FLAGS_WORD", "WORDS", "Ledger", "Liveness", "Words"]

#: Flag bits in the FLAGS word.
ENDED = 1
BROKEN = 2

# Header words.
_MAGIC, _FLAGS, _OPEN, _HINT, _BROKEN_WHY = range(5)
#: The word of the flags, for a caller that reads them straight from the words.
FLAGS_WORD = _FLAGS
_HEADER = 8
_MAGIC_VALUE = 0x6368616E6E656C73  # "channels"

#: Sizes of the tables; a handle token packs (generation, slot) into one int.
HANDLE_SLOTS = 4096
PEER_SLOTS = 512
_SLOT_BITS = 16

#: Layout of one peer entry: the process (or connection) identity and, for
#: senders, the handle it sent on.
_PEER_WORDS = 3

#: Tells whether a peer recorded as (ident, stamp) still exists.
Liveness = Callable[[int, int], bool]


class Words(Protocol):
    """An indexable run of 64-bit integers: a shared memoryview, or an array."""

    def __getitem__(self, index: int, /) -> int: ...

    def __setitem__(self, index: int, value: int, /) -> None: ...

    def __len__(self) -> int: ...


_SENDERS = _HEADER + HANDLE_SLOTS
_RECEIVERS = _SENDERS + PEER_SLOTS * _PEER_WORDS
WORDS = _RECEIVERS + PEER_SLOTS * _PEER_WORDS


class Ledger:
    """Bookkeeping of one channel over ``WORDS`` integers (see the module docstring)."""

    __slots__ = ("_w",)

    def __init__(self, words: Words) -> None:
        if len(words) < WORDS:
            raise ValueError(f"a ledger needs {WORDS} words, got {len(words)}")
        self._w = words

    def initialise(self) -> int:
        """Set up a fresh ledger and return the token of the first sender handle."""
        w = self._w
        w[_MAGIC] = _MAGIC_VALUE
        w[_FLAGS] = 0
        w[_OPEN] = 0
        w[_HINT] = 0
        return self.open_handle()

    # -- flags -----------------------------------------------------------------

    @property
    def flags(self) -> int:
        return self._w[_FLAGS]

    @property
    def ended(self) -> bool:
        return bool(self._w[_FLAGS] & ENDED)

    @property
    def broken(self) -> bool:
        return bool(self._w[_FLAGS] & BROKEN)

    @property
    def broken_why(self) -> int:
        """Why the channel broke: a ``_policy.Broken`` reason, 0 if it is not broken."""
        return self._w[_BROKEN_WHY] if self._w[_FLAGS] & BROKEN else 0

    def mark_broken(self, why: int) -> None:
        """Mark the channel broken for everyone; the first reason (``_policy.Broken``) wins."""
        w = self._w
        if not w[_FLAGS] & (BROKEN | ENDED):
            w[_BROKEN_WHY] = why
            w[_FLAGS] |= BROKEN

    @property
    def open_handles(self) -> int:
        return self._w[_OPEN]

    # -- sender handles --------------------------------------------------------

    def open_handle(self) -> int:
        """Allocate a new open sender handle and return its token."""
        w = self._w
        if w[_FLAGS] & ENDED:
            raise ChannelError("the channel has ended; no new sender handle can be opened")
        start = w[_HINT]
        for i in range(HANDLE_SLOTS):
            slot = (start + i) % HANDLE_SLOTS
            word = w[_HEADER + slot]
            if not word & 1:
                generation = (word >> 1) + 1
                w[_HEADER + slot] = (generation << 1) | 1
                if _steps.step:
                    _steps.step("clone:slot-opened")
                w[_OPEN] += 1
                if _steps.step:
                    _steps.step("clone:count-raised")
                w[_HINT] = (slot + 1) % HANDLE_SLOTS
                return (generation << _SLOT_BITS) | slot
        raise ChannelError(f"more than {HANDLE_SLOTS} sender handles are open on one channel")

    def is_open(self, token: int) -> bool:
        """Whether the handle ``token`` is still open."""
        slot = token & ((1 << _SLOT_BITS) - 1)
        return self._w[_HEADER + slot] == ((token >> _SLOT_BITS) << 1) | 1

    @staticmethod
    def open_word(token: int) -> tuple[int, int]:
        """The word of ``token``'s slot, and the value it holds while the handle is open:
        for a caller that checks one handle over and over straight from the words."""
        return _HEADER + (token & ((1 << _SLOT_BITS) - 1)), ((token >> _SLOT_BITS) << 1) | 1

    def sendable(self, token: int) -> bool:
        """Whether ``token`` is open and the channel not broken: one call per item sent."""
        w = self._w
        slot = token & ((1 << _SLOT_BITS) - 1)
        return w[_HEADER + slot] == ((token >> _SLOT_BITS) << 1) | 1 and not w[_FLAGS] & BROKEN

    def close_handle(self, token: int) -> bool:
        """Close the handle ``token``; return True if that ended the channel.

        Closing an already closed handle does nothing, so a handle closed in two
        processes counts once.
        """
        w = self._w
        if not self.is_open(token):
            return False
        slot = token & ((1 << _SLOT_BITS) - 1)
        w[_HEADER + slot] -= 1
        if _steps.step:
            _steps.step("close:slot-closed")
        w[_OPEN] -= 1
        if _steps.step:
            _steps.step("close:count-lowered")
        self._forget(_SENDERS, lambda entry_token: entry_token == token)
        if _steps.step:
            _steps.step("close:forgotten")
        if w[_OPEN] == 0:
            w[_FLAGS] |= ENDED
            return True
        return False

    def repair(self) -> bool:
        """Finish what a holder of the books that died midway left; True if that ended the channel.

        The handle slots are the truth: the open count is counted again from them,
        and senders noted on closed handles are forgotten. Repeating it changes
        nothing, so a death during the repair is repaired by the next holder.
        """
        w = self._w
        w[_OPEN] = sum(w[_HEADER + slot] & 1 for slot in range(HANDLE_SLOTS))
        self._forget(_SENDERS, lambda entry_token: not self.is_open(entry_token))
        if w[_OPEN] == 0 and not w[_FLAGS] & ENDED:
            w[_FLAGS] |= ENDED
            return True
        return False

    # -- peers -----------------------------------------------------------------

    def note_sender(self, ident: int, stamp: int, token: int, alive: Liveness) -> None:
        """Record that ``ident`` sends on ``token``, so its death can break the channel."""
        self._note(_SENDERS, ident, stamp, token, alive)

    def note_receiver(self, ident: int, stamp: int, alive: Liveness) -> int:
        """Record that ``ident`` receives, so a full channel can tell it has nobody left.

        Returns its entry, whose third word counts the items it took and has not
        marked done (joinable channels); only that process changes it.
        """
        w = self._w
        for i in range(_RECEIVERS, _RECEIVERS + PEER_SLOTS * _PEER_WORDS, _PEER_WORDS):
            if w[i] == ident and w[i + 1] == stamp:
                return i
        return self._note(_RECEIVERS, ident, stamp, 0, alive)

    def forget_receiver(self, ident: int) -> None:
        """Drop ``ident`` from the receivers (it closed its receiver), unless it holds items."""
        w = self._w
        for i in range(_RECEIVERS, _RECEIVERS + PEER_SLOTS * _PEER_WORDS, _PEER_WORDS):
            if w[i] == ident and not w[i + 2]:
                w[i] = w[i + 1] = w[i + 2] = 0

    def holding(self, entry: int) -> int:
        """How many items receiver ``entry`` took and has not marked done."""
        return self._w[entry + 2]

    def hold(self, entry: int, delta: int) -> None:
        """Change receiver ``entry``'s count of items not marked done (its own process only)."""
        self._w[entry + 2] += delta

    def held_by_the_living(self, alive: Liveness) -> int:
        """Items that live receivers took and have not marked done."""
        w = self._w
        return sum(
            w[i + 2]
            for i in range(_RECEIVERS, _RECEIVERS + PEER_SLOTS * _PEER_WORDS, _PEER_WORDS)
            if w[i] and alive(w[i], w[i + 1])
        )

    def receiver_count(self, alive: Liveness) -> int:
        """How many processes noted as receivers are alive."""
        w = self._w
        return sum(
            1
            for i in range(_RECEIVERS, _RECEIVERS + PEER_SLOTS * _PEER_WORDS, _PEER_WORDS)
            if w[i] and alive(w[i], w[i + 1])
        )

    def senders_gone(self, alive: Liveness) -> bool:
        """True if some process sent on an open handle and every such process is dead."""
        return self._all_dead(_SENDERS, alive)

    def receivers_gone(self, alive: Liveness) -> bool:
        """True if some process received and every such process is dead."""
        return self._all_dead(_RECEIVERS, alive)

    def _note(self, base: int, ident: int, stamp: int, token: int, alive: Liveness) -> int:
        w = self._w
        free = -1
        end = base + PEER_SLOTS * _PEER_WORDS
        for i in range(base, end, _PEER_WORDS):
            if w[i] == ident and w[i + 1] == stamp and w[i + 2] == token:
                return i
            if free < 0 and w[i] == 0:
                free = i
        if free < 0:
            for i in range(base, end, _PEER_WORDS):
                if not alive(w[i], w[i + 1]):
                    free = i
                    break
        if free < 0:
            raise ChannelError(f"more than {PEER_SLOTS} live processes use one channel")
        w[free + 1] = stamp
        w[free + 2] = token
        w[free] = ident
        return free

    def _forget(self, base: int, match: Callable[[int], bool]) -> None:
        w = self._w
        for i in range(base, base + PEER_SLOTS * _PEER_WORDS, _PEER_WORDS):
            if w[i] and match(w[i + 2]):
                w[i] = w[i + 1] = w[i + 2] = 0

    def _all_dead(self, base: int, alive: Liveness) -> bool:
        w = self._w
        seen = False
        for i in range(base, base + PEER_SLOTS * _PEER_WORDS, _PEER_WORDS):
            ident = w[i]
            if ident:
                if alive(ident, w[i + 1]):
                    return False
                seen = True
        return seen
