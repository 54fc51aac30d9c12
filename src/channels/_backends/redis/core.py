"""One redis channel as a process sees it: non-blocking steps, one readiness wait.

``put`` and ``take`` are each one script call (see ``scripts``);
``wait`` blocks in the server until an item or the channel's bell arrives, or a
short slice passes, so that lapsed leases are noticed. The blocking ``send`` and
``recv`` the handles call are loops over those three.

What a core pickles, and what each process keeps for it, is in ``state``; the
checks of its options in ``options``; its script calls, and how they notice
that the server lost the channel, in ``calls``; what the lease thread does for
it in ``renewal``.

Why a lost reply never loses, skips, duplicates or reorders an item:

- Each put carries the sequence numbers of its items, reserved before the call
  and never used again, whatever its fate. The server stores only numbers
  above the last one it stored for that sender, so the same call repeated after
  a lost reply stores nothing twice, a call that comes late (after a later one)
  stores nothing, and every later put is stored. A put that raised may have
  gone in; ``ChannelTimeout.unsure`` says how many items that concerns.
- A take whose reply was lost left its items pending for this receiver; the
  next take asks for those first (``recover``), before anything new, so one
  sender's items keep their order. New items come in increasing id order, so
  an id that comes again means the server went back in time.
- Every wait for a reply is bounded by the caller's deadline (a stalled server
  cannot hold a call past it); a wait slice that passes is not a deadline.
- New handles carry tokens chosen in this process (``state``), so opening one
  again is harmless.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import secrets
import time
from collections.abc import Sequence

from ..._codec.payloads import Payload, plain
from ..._codec.serializers import Serializer
from ..._engine.conditions import Condition, error, not_joinable, nothing_to_mark
from ..._engine.contract import ChannelStats
from ..._engine.core_base import CoreBase
from ..._errors import (
    ChannelBroken,
    ChannelError,
    ChannelTimeout,
)
from ..._process.liveness import this_process
from ..._timing import remaining
from . import renewal
from . import scripts as lua
from .calls import Calls, broken, stream_items
from .client import Arg, as_bytes, as_int, as_list
from .lease import hold
from .options import Settings
from .state import Local, Ref, ms, new_token

__all__ = ["RedisCore"]

log = logging.getLogger(__name__)


class RedisCore(CoreBase):
    """One redis channel's transport and books; implements ``Core`` (see the module doc)."""

    __slots__ = (
        "__weakref__",
        "_born_pid",
        "_calls",
        "_joinable",
        "_slice",
        "ref",
    )

    def __init__(
        self,
        ref: Ref,
        serializer: Serializer,
        max_message_size: int | None,
        joinable: bool | None = None,
        *,
        epoch: str = "",
        seen: int = 0,
    ) -> None:
        self.ref: Ref = ref
        super().__init__(serializer, max_message_size)
        self._joinable = joinable
        self._calls = Calls(ref, epoch, seen)
        # The process this core was handed to as it started, which keeps its leases
        # (born_suffix) fresh; 0 if none.
        self._born_pid = 0
        # How long one wait may block before looking at the leases again.
        self._slice = max(0.05, min(1.0, ref.lease / 4))

    @classmethod
    def open(cls, given: Settings, *, with_sender: bool) -> RedisCore:
        """Reach the server and join (or start) the channel there, with checked options."""
        token = new_token() if with_sender else 0
        ref = Ref(given.server, given.name, given.prefix, token, given.lease, given.reconnect)
        core = cls(ref, given.serializer, given.max_message_size)
        size, joinable = given.maxsize, given.joinable
        args: list[Arg] = [
            token,
            -1 if size is None else size,
            -1 if joinable is None else int(joinable),
        ]
        linger = -1 if given.linger is None else math.ceil(given.linger)
        args += [linger, int(with_sender), secrets.token_hex(8), ms(given.lease)]
        status, rest = core._calls.call(lua.OPEN, args, None)
        known_size, known_joinable = as_int(rest[0]), as_int(rest[1])
        where = f"channel {ref.name!r} at {ref.server.describe()}"
        if status == b"end":
            raise error(
                Condition.SENDER_REFUSED,
                ref.name,
                False,
                f"at {ref.server.describe()}, until its end marker expires "
                "(option linger, when it was made: a day unless set)",
            )
        if status == b"options":
            has = (known_size, bool(known_joinable), as_int(rest[2]))
            asked = (size, joinable, None if linger < 0 else linger)
            checked = zip(("maxsize", "joinable", "linger"), has, asked, strict=True)
            mismatch = [d for o, h, a in checked for d in (o, h, h if a is None else a)]
            raise error(Condition.MISMATCH, ref.name, *mismatch)
        if status == b"broken":
            raise broken(where, rest[2])
        core._joinable = None if known_joinable < 0 else bool(known_joinable)
        return core

    # -- the Core protocol -------------------------------------------------------------

    @property
    def first_token(self) -> int:
        return self.ref.first

    def clone(self, token: int) -> int:
        local = self._calls.here()
        if local.handed:
            renewal.settle(self._calls, local, False, None)
        new = new_token()
        status, _ = self._calls.call(lua.CLONE, [token, new], None)
        if status != b"ok":
            raise error(Condition.CLONE_CLOSED)
        return new

    def handing_over(self, token: int) -> None:
        """Under spawn or forkserver, the process being started holds handle ``token``.

        Once it has a pid, it gets a sender's lease (see ``renewal``).
        """
        if self._calls.here().handed.note(token):
            hold(self)  # the lease thread settles it even if this process makes no other call

    def close_sender(self, token: int) -> None:
        local = self._calls.here()
        if local.handed:
            renewal.settle(self._calls, local, False, None)
        if token in local.closed:
            return
        try:
            self._calls.call(lua.CLOSE, [token], None)
        except ChannelBroken as exc:  # its lease will lapse instead: receivers see a crash
            # Strings, not objects: a log record kept by a handler must not keep the core alive.
            log.warning("could not close a sender handle of %s: %s", repr(self), str(exc))
        local.closed.add(token)
        local.sent_on.discard(token)

    def sender_open(self, token: int) -> bool:
        local = self._calls.here()
        if token in local.closed:
            return False
        if local.handed:
            renewal.settle(self._calls, local, False, None)
        key = self.ref.keys[1]
        try:
            is_open = bool(
                local.client.run(
                    lambda _, t: local.client.command(("HEXISTS", key, token), t), None
                )
            )
        except ChannelBroken:
            return False
        if not is_open:
            local.closed.add(token)
        return is_open

    def close_receiver(self) -> None:
        local = self._calls.here()
        with local.take_lock:
            if not local.receiving or local.ended:
                local.receiving = False
                return
            acks = [] if self._joinable else list(local.held)
            try:
                self._calls.call(lua.CLOSE_RECEIVER, [local.consumer, *acks], None)
            except ChannelBroken as exc:
                log.warning("could not close a receiver of %s: %s", repr(self), str(exc))
            local.receiving = False
            if not self._joinable:
                local.held.clear()

    # -- non-blocking steps and the readiness wait ---------------------------------------

    def put(self, token: int, items: Sequence[Payload], deadline: float | None) -> int:
        """Store as many of ``items`` (in order) as there is room for; return how many."""
        payload = [plain(data) for data in items]
        local = self._calls.here()
        with local.put_lock:
            base = local.next_seq.get(token, 0)
            local.next_seq[token] = base + len(payload)  # never reused, whatever happens
            member = f"{token}{local.member_suffix}"
            lease = ms(self.ref.lease)
            try:
                status, rest = self._calls.call(
                    lua.PUT, [token, member, base, lease, *payload], deadline
                )
            except ChannelTimeout as exc:  # a reply was lost: they may have gone in
                local.unsure[token] = (base, len(payload))
                raise ChannelTimeout(str(exc), unsure=len(payload)) from exc
            except ChannelError:
                local.unsure[token] = (base, len(payload))
                raise
            if status == b"closed":
                local.closed.add(token)
                raise error(Condition.SENDER_CLOSED)
            if status == b"broken":
                raise broken(repr(self), rest[3])
            stored, bell, last = as_int(rest[0]), as_bytes(rest[1]), as_int(rest[2])
            earlier = local.unsure.pop(token, None)
            if earlier is not None:
                first, count = earlier
                went = min(max(last - first + 1, 0), count)
                log.info("%d of %d item(s) of a send whose reply was lost went in", went, count)
            local.bell_mark = bell
            if token not in local.sent_on:
                local.sent_on.add(token)
                hold(self)
            return stored

    def take(self, max_items: int, deadline: float | None) -> list[Payload]:
        """Take up to ``max_items`` ready items (none if nothing is ready).

        Raises:
            EndOfChannel: the channel ended and every item was taken and acknowledged.
            ChannelBroken: every process that sent on an open handle is gone, or the
                server lost the channel's data.
        """
        local = self._calls.here()
        if local.handed:
            renewal.settle(self._calls, local, False, deadline)
        with local.take_lock:
            local.want = max_items
            if not local.receiving:
                local.receiving = True
                hold(self)
            while not local.backlog:
                if local.ended:
                    raise error(Condition.ENDED)
                if not self._take_round(local, max_items, deadline):
                    return []
            batch: list[Payload] = []
            while local.backlog and len(batch) < max_items:
                item_id, data = local.backlog.popleft()
                local.held.append(item_id)
                batch.append(data)
            return batch

    def _take_round(self, local: Local, max_items: int, deadline: float | None) -> bool:
        """One take script call; fills the backlog and returns True, or False if nothing came."""
        acks = [] if self._joinable else list(local.held)

        def args(attempt: int) -> list[Arg]:
            if attempt:
                local.recover = True  # a lost reply may have handed us items
            recover = int(local.recover)
            return [local.consumer, max_items, ms(self.ref.lease), recover, *acks]

        try:
            status, rest = self._calls.call(lua.TAKE, args, deadline)
        except ChannelError:
            local.recover = True  # its reply may be lost: what it took is pending for us
            raise
        if status == b"end":
            local.held.clear()
            local.ended = True
            raise error(Condition.ENDED)
        self._joinable = bool(as_int(rest[0]))
        if not self._joinable:
            local.held.clear()
        if status == b"broken":
            raise broken(repr(self), rest[1])
        if status == b"none":
            local.recover = False
            local.sent_mark, local.bell_mark = as_bytes(rest[1]), as_bytes(rest[2])
            local.maxsize = as_int(rest[3])
            return False
        pairs = [(as_bytes(rest[i]), as_bytes(rest[i + 1])) for i in range(1, len(rest), 2)]
        if status == b"again":
            local.recover = False
            known = set(local.held) | {item_id for item_id, _ in local.backlog}
            pairs = [pair for pair in pairs if pair[0] not in known]
        elif status == b"items":
            self._calls.check_new(local, pairs)
        local.backlog.extend(pairs)
        return True

    def ready_fd(self, sending: bool) -> int | None:
        return None  # the server tells when to look again: see wait

    def wait(self, sending: bool, timeout: float) -> None:
        """Block until something may have changed, ``timeout``, or a short slice passes.

        A server that does not answer within the slice is no error here: the
        caller decides, by its own deadline, whether to give up.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        local = self._calls.here()
        try:
            if local.handed or local.born:
                renewal.settle(self._calls, local, True, deadline)
            if not sending and local.maxsize == 0 and local.receiving:
                self._read_blocking(local, deadline)
                return
            block = int(remaining(deadline, self._slice) * 1000)
            if block <= 0:
                return
            keys = self.ref.keys
            streams: list[Arg] = [keys[6]] if sending else [keys[2], keys[6]]
            marks: list[Arg] = [local.bell_mark + b"-0"]
            if not sending:
                marks.insert(0, local.sent_mark + b"-0")
            read: list[Arg] = ["XREAD", "COUNT", 1, "BLOCK", block, "STREAMS", *streams, *marks]
            local.client.run(lambda _, t: local.client.command(read, t), deadline, block / 1000)
        except ChannelTimeout:
            return

    def _read_blocking(self, local: Local, deadline: float | None) -> None:
        """Wait for new items by taking them: one round trip from an item's arrival to here.

        Only on unbounded channels: a take here does not ring the bell that senders
        blocked on a full channel wait for. The end of the channel rings no item, so
        the wait is kept short.
        """
        import redis  # noqa: PLC0415 (optional: imported only when used)

        block = int(remaining(deadline, min(self._slice, 0.25)) * 1000)
        if block <= 0:
            return
        keys = self.ref.keys

        def read(attempt: int, timeout: float) -> object:
            if attempt:
                # A lost reply may have handed us items: the next take asks for them
                # first, so nothing newer may be read before them.
                local.recover = True
                return None
            command: list[Arg] = ["XREADGROUP", "GROUP", "g", local.consumer, "COUNT"]
            command += [local.want, "BLOCK", block, "STREAMS", keys[2], ">"]
            try:
                return local.client.command(command, timeout)
            except redis.ResponseError:  # the channel was removed (ended and drained, or lost)
                local.maxsize = -1
                return None

        with local.take_lock:
            if local.recover:
                return
            try:
                reply = as_list(local.client.run(read, deadline, block / 1000) or [])
            except ChannelError:
                local.recover = True  # its reply may be lost: what it took is pending for us
                raise
            pairs = stream_items(reply)
            self._calls.check_new(local, pairs)
            local.backlog.extend(pairs)

    def break_channel(self, why: str) -> None:
        """Break the channel for every handle, anywhere; their ``ChannelBroken`` says ``why``."""
        self._calls.call(lua.BREAK, [why], None)

    # -- joinable channels and statistics -------------------------------------------------

    def stats(self) -> ChannelStats:
        """The channel's numbers now (see ``ChannelStats``)."""
        local = self._calls.here()
        if local.handed:
            renewal.settle(self._calls, local, False, None)
        status, rest = self._calls.call(lua.STATS, [], None)
        sent, received, done, ended, broken, joinable, senders, receivers, bell = (
            as_int(x) for x in rest
        )
        if status == b"ok":
            self._joinable = bool(joinable)
            local.bell_mark = str(bell).encode()
        return ChannelStats(
            waiting=sent - received,
            senders=senders,
            receivers=receivers,
            sent=sent,
            received=received,
            unfinished=sent - done if joinable else 0,
            ended=bool(ended),
            broken=bool(broken),
        )

    def task_done(self) -> None:
        """Mark the item this receiver took longest ago, and has not marked, as done."""
        local = self._calls.here()
        if self._joinable is None:
            self.stats()
        if not self._joinable:
            not_joinable("task_done()")
        with local.take_lock:
            if not local.held:
                nothing_to_mark()
            self._calls.call(lua.DONE, [local.held[0]], None)
            local.held.popleft()

    def unfinished(self) -> int:
        """Items sent and not yet marked done (a dead receiver's go to another receiver)."""
        stats = self.stats()
        if not self._joinable and not stats.ended:
            not_joinable("join()")
        return stats.unfinished

    # -- leases -----------------------------------------------------------------------

    @property
    def lease(self) -> float:
        return self.ref.lease

    def renew(self) -> None:
        """Extend the leases this process holds on the channel (called by the lease thread)."""
        renewal.renew(self._calls, self._born_pid == this_process.pid)

    def at_exit(self) -> None:
        """Acknowledge the items this process took, so none is delivered again."""
        renewal.at_exit(self._calls, self._joinable)

    # -- plumbing ------------------------------------------------------------------------

    def __reduce__(self) -> tuple[object, ...]:
        known = (self._calls.epoch, self._calls.seen)
        return (_rebuild, (self.ref, self._serializer, self._limit, self._joinable, known))

    def __repr__(self) -> str:
        return repr(self._calls)


def _rebuild(
    ref: Ref,
    serializer: Serializer,
    max_message_size: int | None,
    joinable: bool | None,
    known: tuple[str, int] = ("", 0),
) -> RedisCore:
    """Unpickle a core; in a process that is starting, keep the leases held for it fresh."""
    epoch, seen = known
    core = RedisCore(ref, serializer, max_message_size, joinable, epoch=epoch, seen=seen)
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        core._born_pid = this_process.pid  # pyright: ignore[reportPrivateUsage]
        core._calls.here()  # pyright: ignore[reportPrivateUsage]  (here, not in the lease thread)
        hold(core)
    return core
