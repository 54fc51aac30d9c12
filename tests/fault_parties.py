"""The producer and consumer processes of the fault runs: each records its history to a file.

A producer numbers its items ``(who, seq)`` and records how each send ended
(see ``history``); a consumer records what it got and how its stream stopped.
Both write their ``Party`` as JSON when they finish, however they finish.

Run as a script (``python fault_parties.py JSON``), one of them runs in a process
of its own, such as one started in another network namespace.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import channels
from channels import ChannelBroken, ChannelClosed, ChannelError, ChannelTimeout, EndOfChannel

from history import Party, Stream, item_of

__all__ = ["Plan", "consume", "main", "produce"]

Item = tuple[str, int]


@dataclass(frozen=True)
class Plan:
    """What a producer sends: ``count`` items in batches of ``batch`` (1: ``send``), ``pace`` s
    apart, each call with ``timeout``; its record goes to the file ``out``."""

    who: str
    count: int
    batch: int
    timeout: float
    pace: float
    out: str


def produce(tx: channels.Sender[Item], plan: Plan) -> None:
    """Send as ``plan`` says and record how each send ended."""
    who, count, batch, timeout, pace = plan.who, plan.count, plan.batch, plan.timeout, plan.pace
    party = Party()
    seq = 0
    try:
        while seq < count:
            items = [(who, s) for s in range(seq, min(seq + batch, count))]
            seq += len(items)
            try:
                if batch == 1:
                    tx.send(items[0], timeout=timeout)
                else:
                    tx.send_many(items, timeout=timeout)
            except ChannelTimeout as exc:  # how many went, and how many may have (a lost reply)
                for i, (_, s) in enumerate(items):
                    if i < exc.sent:
                        party.sent(who, s, "returned")
                    elif i < exc.sent + exc.unsure or batch == 1:
                        party.sent(who, s, "uncertain")
                    else:
                        party.sent(who, s, "not_sent")
            except ChannelBroken as exc:  # including ServerUnreachable: the fate is unknown
                for _, s in items:
                    party.sent(who, s, "uncertain")
                party.broken.append(f"{who}: {type(exc).__name__}: {exc}")
                break
            except ChannelClosed as exc:  # this handle is open: nothing should close it
                for _, s in items:
                    party.sent(who, s, "not_sent")
                party.errors.append(f"{who}: ChannelClosed: {exc}")
                break
            else:
                for _, s in items:
                    party.sent(who, s, "returned")
            time.sleep(pace)
    finally:
        try:
            tx.close()
        except ChannelError as exc:
            party.errors.append(f"{who} at close: {type(exc).__name__}: {exc}")
        party.dump(Path(plan.out))


def consume(url: str, who: str, hang: float, options: dict[str, float], out: str) -> None:
    """Receive from ``url`` until the channel ends or fails; ``hang`` s with nothing: a hang."""
    party = Party()
    stream = Stream(who)
    party.streams.append(stream)
    rx = channels.open_receiver[Item](url, **options)  # type: ignore[arg-type]
    try:
        while True:
            began = time.monotonic()
            try:
                item = rx.recv(timeout=hang)
            except EndOfChannel:
                stream.stop = "end"
                break
            except ChannelBroken as exc:
                stream.stop = "broken"
                party.broken.append(f"{who}: {type(exc).__name__}: {exc}")
                break
            except ChannelTimeout:
                waited = time.monotonic() - began
                if waited >= hang * 0.9:
                    stream.stop = "hang"
                    break
                # before its timeout: wrong, but the stream goes on, to see what else happens
                party.errors.append(
                    f"{who}: ChannelTimeout after {waited:.1f} s of {hang:g} s, "
                    f"after its item #{len(stream.items)}"
                )
                continue
            except ChannelError as exc:
                stream.stop = f"{type(exc).__name__}: {exc}"
                break
            stream.items.append(item_of(item))
    finally:
        with contextlib.suppress(ChannelError):
            rx.close()
        party.dump(Path(out))


def main(spec: dict[str, Any]) -> None:
    """Run one party as ``spec`` says (see ``test_redis_partition``).

    A producer opens its sender handle, says so in the file ``ready``, and
    starts only once the file ``go`` exists: every producer holds a handle
    before any closes one, so the channel cannot end early.
    """
    options = spec["options"]
    if spec["role"] == "consume":
        consume(spec["url"], spec["who"], spec["hang"], options, spec["out"])
        return
    tx = channels.open_sender[Item](spec["url"], **options)
    Path(spec["ready"]).touch()
    deadline = time.monotonic() + 60
    while not Path(spec["go"]).exists():
        if time.monotonic() > deadline:
            tx.close()
            raise SystemExit("never told to go")
        time.sleep(0.01)
    produce(tx, Plan(**spec["plan"]))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
