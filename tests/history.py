"""A record of what a run's senders and receivers saw, and the promises it must keep.

Each sender numbers its items ``(sender, seq)`` and records how each ``send``
ended: it returned (the item is in the channel), it raised and the item's fate
is unknown (a timeout or a lost server: it may have gone in), or it raised and
the item is known not to be in the channel (``ChannelTimeout.sent`` of a batch
says how many went; the rest did not). Each receiver records the items it got,
in order, and how its stream stopped. ``check`` then lists every broken promise:

- nothing that ``send`` returned for is lost, unless the server lost data and
  said so (``ChannelBroken``);
- nothing is delivered twice, unless a receiver crashed (at least once) or the
  server lost data and said so;
- items of one sender reach each receiver in the order they were sent;
- nothing is delivered that was never sent, or that its send said did not go;
- no receiver hangs, and none ends cleanly while items it was owed are missing;
- no process got an error it should not have (say ``ChannelClosed`` on an open handle);
- when the server lost data, some handle raised ``ChannelBroken``; when it did
  not, nobody did (unless the test let processes die).

Records travel between processes as JSON (``Party.dump``/``load``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

__all__ = ["History", "Party", "Stream", "check", "item_of"]

Outcome = Literal["returned", "uncertain", "not_sent"]
#: How a receiver's stream stopped: a clean end, ChannelBroken, no item and no end for a
#: long time, or any other error (named).
Stop = str
Item = tuple[str, int]
OUTCOMES: tuple[Outcome, ...] = ("returned", "uncertain", "not_sent")


def item_of(value: object) -> Item:
    """An item as received (a list after JSON, a tuple after pickle) as ``(sender, seq)``."""
    sender, seq = cast("tuple[object, object]", tuple(cast("Iterable[object]", value)))
    assert isinstance(sender, str), value
    assert isinstance(seq, int), value
    return (sender, seq)


@dataclass
class Stream:
    """What one receiver got, in order, and how it stopped ("end", "broken", "hang", ...)."""

    receiver: str
    items: list[Item] = field(default_factory=list[Item])
    stop: Stop = "running"


@dataclass
class Party:
    """What one process saw: its sends, its receivers' streams, the ChannelBroken it got, and
    any other error a sender got that it should not have (say ChannelClosed on an open handle).
    """

    sends: list[tuple[str, int, Outcome]] = field(default_factory=list[tuple[str, int, Outcome]])
    streams: list[Stream] = field(default_factory=list[Stream])
    broken: list[str] = field(default_factory=list[str])
    errors: list[str] = field(default_factory=list[str])

    def sent(self, sender: str, seq: int, outcome: Outcome) -> None:
        assert outcome in OUTCOMES, outcome
        self.sends.append((sender, seq, outcome))

    def dump(self, path: Path) -> None:
        data = {
            "sends": self.sends,
            "streams": [[s.receiver, s.items, s.stop] for s in self.streams],
            "broken": self.broken,
            "errors": self.errors,
        }
        path.write_text(json.dumps(data))

    @staticmethod
    def load(path: Path) -> Party:
        data = json.loads(path.read_text())
        party = Party(
            broken=[str(b) for b in data["broken"]], errors=[str(e) for e in data["errors"]]
        )
        for sender, seq, outcome in data["sends"]:
            party.sent(str(sender), int(seq), outcome)
        for receiver, items, stop in data["streams"]:
            party.streams.append(Stream(str(receiver), [item_of(i) for i in items], str(stop)))
        return party


@dataclass
class History:
    """Every party of one run, and what the run did to the server."""

    parties: list[Party] = field(default_factory=list[Party])
    #: A fault that loses data on the server was injected (a restart without persistence,
    #: FLUSHALL, a stale snapshot).
    lost_data: bool = False
    #: Processes were killed on purpose: ChannelBroken and redelivery are allowed.
    crashes: bool = False

    @property
    def sends(self) -> dict[Item, Outcome]:
        out: dict[Item, Outcome] = {}
        for party in self.parties:
            for sender, seq, outcome in party.sends:
                assert (sender, seq) not in out, f"{sender}#{seq} recorded twice"
                out[(sender, seq)] = outcome
        return out

    @property
    def streams(self) -> list[Stream]:
        return [s for party in self.parties for s in party.streams]

    @property
    def broken(self) -> list[str]:
        return [b for party in self.parties for b in party.broken]

    @property
    def errors(self) -> list[str]:
        return [e for party in self.parties for e in party.errors]


def check(history: History) -> list[str]:
    """Every promise the run broke, in words (an empty list: none)."""
    sends = history.sends
    streams = history.streams
    loud = bool(history.broken)
    excused = history.lost_data and loud  # data loss the handles reported
    problems: list[str] = []
    got = Counter(item for s in streams for item in s.items)

    for item, times in sorted(got.items()):
        outcome = sends.get(item)
        if outcome is None:
            problems.append(f"{_name(item)} was received but never sent")
        elif outcome == "not_sent":
            problems.append(f"{_name(item)} was received although its send said it did not go")
        if times > 1 and not (history.crashes or excused):
            problems.append(f"{_name(item)} was received {times} times")

    missing = sorted(i for i, o in sends.items() if o == "returned" and i not in got)
    if missing and not excused:
        shown = ", ".join(_name(i) for i in missing[:10])
        problems.append(f"{len(missing)} item(s) that send returned for were lost: {shown}")

    for s in streams:
        if not excused:
            problems += _order(s)
        if s.stop == "hang":
            problems.append(f"receiver {s.receiver} hung: no item and no end")
        elif s.stop == "end" and missing:
            problems.append(
                f"receiver {s.receiver} ended cleanly with {len(missing)} returned item(s) missing"
            )
        elif s.stop not in ("end", "broken"):
            problems.append(f"receiver {s.receiver} stopped with {s.stop}")

    problems += [f"unexpected error: {e}" for e in history.errors]
    if history.lost_data and not loud:
        problems.append("the server lost data and no handle raised ChannelBroken")
    if loud and not (history.lost_data or history.crashes):
        problems.append(f"ChannelBroken with no data lost and nobody killed: {history.broken[0]}")
    return problems


def _order(stream: Stream) -> list[str]:
    """Where one receiver got a sender's items out of the order they were sent."""
    last: dict[str, int] = {}
    problems: list[str] = []
    for sender, seq in stream.items:
        before = last.get(sender)
        if before is not None and seq <= before:
            problems.append(
                f"receiver {stream.receiver} got {_name((sender, seq))} after "
                f"{_name((sender, before))}"
            )
        last[sender] = max(seq, before if before is not None else seq)
    return problems


def _name(item: Item) -> str:
    return f"{item[0]}#{item[1]}"
