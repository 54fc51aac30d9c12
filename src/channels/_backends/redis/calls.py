"""One channel's script calls from one process, and what their replies mean.

Every call carries the channel's epoch as this process knows it and the highest
version it saw (see ``scripts``). A reply that says the server lost the
channel's data raises ``ChannelBroken`` here and in every later call, so no
handle ever starts afresh or ends early in its place. New items come in
increasing id order, so an id that comes again means the server went back in
time: that is lost data too.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Sequence
from typing import NoReturn

from ..._engine.conditions import Broken, Condition, error
from ..._errors import ChannelError
from ..._process.per_process import PerProcess
from . import scripts as lua
from .client import Arg, as_bytes, as_int, as_list
from .state import Local, Ref

__all__ = ["Calls", "broken", "stream_items"]


class Calls:
    """The script calls of one core: its per-process state, and what it knows of the channel."""

    __slots__ = ("__weakref__", "epoch", "local", "lost", "ref", "seen")

    def __init__(self, ref: Ref, epoch: str = "", seen: int = 0) -> None:
        self.ref = ref
        # The channel's epoch ('' until seen) and the highest version seen (see scripts).
        self.epoch = epoch
        self.seen = seen
        self.lost = False
        self.local: PerProcess[Local] = PerProcess()

    def here(self) -> Local:
        """This process's state for the channel, made on first use in each process."""
        return self.local.get(self._new_local)

    def _new_local(self) -> Local:
        local = Local(self.ref.server, self.ref.reconnect)
        weakref.finalize(self, local.client.disconnect)
        return local

    def mine(self) -> Local | None:
        """This process's state if it has any (the lease thread never makes it)."""
        return self.local.here()

    def call(
        self,
        source: str,
        args: Sequence[Arg] | Callable[[int], Sequence[Arg]],
        deadline: float | None,
    ) -> tuple[bytes, list[object]]:
        """Run one script until the server answers; return its status and the rest.

        ``args`` may be a function of the attempt (0 first), for a call whose
        arguments change after a lost reply. A reply that says the server lost the
        channel's data raises ``ChannelBroken``, here and in every later call.
        """
        if self.lost:
            self.server_lost()
        known: list[Arg] = [self.epoch, self.seen]

        def given(attempt: int) -> list[Arg]:
            return [*known, *(args(attempt) if callable(args) else args)]

        reply = self.here().client.script(source, self.ref.keys, given, deadline)
        status, version, epoch = as_bytes(reply[0]), as_int(reply[1]), as_bytes(reply[2])
        self.seen = max(self.seen, version)
        if epoch and not self.epoch:
            self.epoch = epoch.decode()
        if status == b"lost":
            self.server_lost()
        return status, reply[3:]

    def check_new(self, local: Local, pairs: list[tuple[bytes, bytes]]) -> None:
        """New items come in increasing id order: one that comes again means lost data."""
        for item_id, _ in pairs:
            number = int(item_id.partition(b"-")[0])
            if number <= local.last_new:
                try:
                    self.call(lua.LOST, [], time.monotonic() + 1.0)
                finally:
                    self.server_lost()
            local.last_new = number

    def server_lost(self) -> NoReturn:
        self.lost = True
        local = self.mine()
        if local is not None:
            local.client.disconnect()  # every later call raises at once: nothing more to ask
        raise error(
            Condition.BROKEN,
            Broken.DATA_LOST,
            f"channel {self.ref.name!r} at the redis server at {self.ref.server.describe()}",
        )

    def __repr__(self) -> str:
        return f"{self.ref.server.describe()}/{self.ref.name}"


def stream_items(reply: object) -> list[tuple[bytes, bytes]]:
    """The (id, data) pairs of an XREADGROUP reply on the items stream."""
    pairs: list[tuple[bytes, bytes]] = []
    for stream in as_list(reply)[:1]:
        for entry in as_list(as_list(stream)[1]):
            item_id, fields = as_list(entry)
            values = as_list(fields)
            data = dict(zip(values[::2], values[1::2], strict=True)).get(b"d")
            if data is not None:
                pairs.append((as_bytes(item_id), as_bytes(data)))
    return pairs


def broken(where: str, reason: object) -> ChannelError:
    """The error for a channel the server has marked broken, with what its record says.

    A record with no words is a channel whose senders' leases lapsed; one with
    words was broken on purpose (``break_channel``), and says why.
    """
    said = as_bytes(reason).decode(errors="replace")
    if said:
        return error(Condition.BROKEN, Broken.GIVEN_UP, f"{where}: {said}")
    return error(Condition.BROKEN, Broken.SENDERS_GONE, f"{where}: its lease lapsed")
