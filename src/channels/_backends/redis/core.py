"""One redis channel as a process sees it: non-blocking steps, one readiness wait.

``put`` and ``take`` are each one script call (see ``scripts``);
``wait`` blocks in the server until an item or the channel's bell arrives, or a
short slice passes, so that lapsed leases are noticed. The blocking ``send`` and
``recv`` the handles call are loops over those three.

What a core pickles is a ``Ref`` (the server without credentials, the channel's
name and options) with the channel's epoch and the highest version seen (see
``scripts``), so a handle anywhere notices that the server lost the channel.
Everything tied to one process (connections, this process's receiver name,
the items it holds unacknowledged, sequence numbers of its puts) lives in a
``_Local`` rebuilt in each process.

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
- New handles carry tokens chosen here, so opening one again is harmless.
"""

from __future__ import annotations

import itertools
import logging
import math
import multiprocessing
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from ..._codec import Payload, plain
from ..._config import (
    ContextSpec,
    SerializerSpec,
    check_maxsize,
    check_message_limit,
    resolve_context,
)
from ..._core import ChannelStats, remaining
from ..._errors import (
    ChannelBroken,
    ChannelClosed,
    ChannelError,
    ChannelTimeout,
    ConfigError,
    EndOfChannel,
)
from ..._handover import Handed
from ..._liveness import me, pid_alive, process_stamp
from ..._policy import not_joinable, nothing_to_mark
from ..._serialize import Serializer, resolve_serializer
from . import scripts as lua
from .client import Arg, Client, as_bytes, as_int, as_list
from .connection import (
    CONNECT_TIMEOUT,
    Server,
    import_redis,
    parse_address,
    remember_password,
)
from .lease import born_suffix, hold, process_name

__all__ = ["RedisCore", "Ref"]

log = logging.getLogger(__name__)

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


class _Local:
    """One core's state in one process."""

    def __init__(self, server: Server, reconnect: float) -> None:
        self.pid = me.pid
        self.client = Client(server, reconnect)
        serial = next(_serials)
        self.consumer = f"{process_name()}/{serial}"
        self.member_suffix = f"|{process_name()}/{serial}"
        self.held: deque[bytes] = deque()  # ids taken and not yet acknowledged, oldest first
        self.backlog: deque[tuple[bytes, bytes]] = deque()
        #: The next sequence number of each sender handle's puts (see the module doc).
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


class RedisCore:
    """One redis channel's transport and books; implements ``Core`` (see the module doc)."""

    __slots__ = (
        "__weakref__",
        "_born_pid",
        "_epoch",
        "_joinable",
        "_limit",
        "_local",
        "_lost",
        "_seen",
        "_serializer",
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
        self._serializer = serializer
        self._limit = max_message_size
        self._joinable = joinable
        self._local: _Local | None = None
        # The process this core was handed to as it started, which keeps its leases
        # (born_suffix) fresh; 0 if none.
        self._born_pid = 0
        # How long one wait may block before looking at the leases again.
        self._slice = max(0.05, min(1.0, ref.lease / 4))
        # The channel's epoch ('' until seen) and the highest version seen (see scripts).
        self._epoch = epoch
        self._seen = seen
        self._lost = False

    @classmethod
    def open(
        cls,
        *,
        with_sender: bool,
        maxsize: int | None = None,
        context: ContextSpec = None,
        serializer: SerializerSpec = None,
        max_message_size: int | None = None,
        address: tuple[str, int] | str | None = None,
        name: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        socket: str | None = None,
        tls: bool = False,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls_verify: bool = True,
        lease: float = 10.0,
        reconnect: float = 30.0,
        joinable: bool | None = None,
        linger: float = 86400.0,
        prefix: str = "channels",
    ) -> RedisCore:
        """Check the options, reach the server and join (or start) the channel there."""
        size = None if maxsize is None else check_maxsize(maxsize)
        codec = resolve_serializer(serializer)
        limit = check_message_limit(max_message_size)
        resolve_context(context)
        _positive("lease", lease)
        _positive("reconnect", reconnect)
        _positive("linger", linger)
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigError(f"a channel name is a non-empty string, not {name!r}")
        if not isinstance(prefix, str) or not prefix:
            raise ConfigError(f"a key prefix is a non-empty string, not {prefix!r}")
        if isinstance(db, bool) or not isinstance(db, int) or db < 0:
            raise ConfigError(f"db is a database number >= 0, not {db!r}")
        if joinable is not None and not isinstance(joinable, bool):
            raise ConfigError(f"joinable is True or False, not {joinable!r}")
        import_redis()
        host, port = ("localhost", 0) if socket else parse_address(address)
        server = Server(
            host=host,
            port=port,
            socket=socket,
            db=db,
            username=username,
            tls=bool(tls),
            tls_ca=tls_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_verify=bool(tls_verify),
        )
        remember_password(server, password)
        token = _new_token() if with_sender else 0
        ref = Ref(server, name or f"anon-{secrets.token_hex(8)}", prefix, token, lease, reconnect)
        core = cls(ref, codec, limit)
        args: list[Arg] = [token, -1 if size is None else size]
        args += [-1 if joinable is None else int(joinable), math.ceil(linger), int(with_sender)]
        args += [secrets.token_hex(8), _ms(lease)]
        status, rest = core._call(lua.OPEN, args, None)
        known_size, known_joinable = as_int(rest[0]), as_int(rest[1])
        where = f"channel {ref.name!r} at {server.describe()}"
        if status == b"end":
            raise ChannelClosed(
                f"the {where} has ended; no sender can be opened on it until its "
                f"end marker expires (option linger, {linger:g} s after it was drained)"
            )
        if status == b"options":
            raise ConfigError(
                f"the {where} has maxsize={known_size} and joinable={bool(known_joinable)}; "
                "open it with those or leave them out"
            )
        if status == b"broken":
            raise ChannelBroken(f"the {where} is broken: {_why(rest[2])}")
        core._joinable = None if known_joinable < 0 else bool(known_joinable)
        return core

    # -- the Core protocol -------------------------------------------------------------

    @property
    def serializer(self) -> Serializer:
        return self._serializer

    @property
    def max_message_size(self) -> int | None:
        return self._limit

    @property
    def first_token(self) -> int:
        return self.ref.first

    def clone(self, token: int) -> int:
        local = self._here()
        if local.handed:
            self._settle(local, False, None)
        new = _new_token()
        status, _ = self._call(lua.CLONE, [token, new], None)
        if status != b"ok":
            raise ChannelClosed("this sender handle is closed, or the channel has ended")
        return new

    def handing_over(self, token: int) -> None:
        """Under spawn or forkserver, the process being started holds handle ``token``.

        Once it has a pid, it gets a sender's lease (``_settle``) that this process
        and the child both keep fresh while it runs, so a child that dies at
        start, before it ever sent, lets the channel break like any sender.
        """
        if self._here().handed.note(token):
            hold(self)  # the lease thread settles it even if this process makes no other call

    def _settle(self, local: _Local, watch: bool, deadline: float | None) -> None:
        """Lease each child handed a handle that now has a pid; with ``watch``, end dead ones.

        A dead child's lease lapses at once, not at its end, so receivers see
        the crash within a slice of its death.
        """
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
            self._call(lua.BORN, [_ms(self.ref.lease), *args], deadline)
        except ChannelError as exc:  # such a child counts once it sends, as any other
            log.debug("could not take out a lease for a child of %s: %s", repr(self), str(exc))
            return
        with local.born_lock:
            local.born.update(new)
            for member, _ in dead:
                local.born.pop(member, None)

    def close_sender(self, token: int) -> None:
        local = self._here()
        if local.handed:
            self._settle(local, False, None)
        if token in local.closed:
            return
        try:
            self._call(lua.CLOSE, [token], None)
        except ChannelBroken as exc:  # its lease will lapse instead: receivers see a crash
            # Strings, not objects: a log record kept by a handler must not keep the core alive.
            log.warning("could not close a sender handle of %s: %s", repr(self), str(exc))
        local.closed.add(token)
        local.sent_on.discard(token)

    def sender_open(self, token: int) -> bool:
        local = self._here()
        if token in local.closed:
            return False
        if local.handed:
            self._settle(local, False, None)
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
        local = self._here()
        with local.take_lock:
            if not local.receiving or local.ended:
                local.receiving = False
                return
            acks = [] if self._joinable else list(local.held)
            try:
                self._call(lua.CLOSE_RECEIVER, [local.consumer, *acks], None)
            except ChannelBroken as exc:
                log.warning("could not close a receiver of %s: %s", repr(self), str(exc))
            local.receiving = False
            if not self._joinable:
                local.held.clear()

    # -- non-blocking steps and the readiness wait ---------------------------------------

    @property
    def shm_threshold(self) -> int:
        return 0

    def put(self, token: int, items: Sequence[Payload], deadline: float | None) -> int:
        """Store as many of ``items`` (in order) as there is room for; return how many."""
        payload = [plain(data) for data in items]
        local = self._here()
        with local.put_lock:
            base = local.next_seq.get(token, 0)
            local.next_seq[token] = base + len(payload)  # never reused, whatever happens
            member = f"{token}{local.member_suffix}"
            lease = _ms(self.ref.lease)
            try:
                status, rest = self._call(lua.PUT, [token, member, base, lease, *payload], deadline)
            except ChannelTimeout as exc:  # a reply was lost: they may have gone in
                local.unsure[token] = (base, len(payload))
                raise ChannelTimeout(str(exc), unsure=len(payload)) from exc
            except ChannelError:
                local.unsure[token] = (base, len(payload))
                raise
            if status == b"closed":
                local.closed.add(token)
                raise ChannelClosed("this sender handle is closed, or the channel has ended")
            if status == b"broken":
                raise ChannelBroken(f"{self!r} is broken: {_why(rest[3])}")
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
        local = self._here()
        if local.handed:
            self._settle(local, False, deadline)
        with local.take_lock:
            local.want = max_items
            if not local.receiving:
                local.receiving = True
                hold(self)
            while not local.backlog:
                if local.ended:
                    raise EndOfChannel("the channel has ended")
                if not self._take_round(local, max_items, deadline):
                    return []
            batch: list[Payload] = []
            while local.backlog and len(batch) < max_items:
                item_id, data = local.backlog.popleft()
                local.held.append(item_id)
                batch.append(data)
            return batch

    def _take_round(self, local: _Local, max_items: int, deadline: float | None) -> bool:
        """One take script call; fills the backlog and returns True, or False if nothing came."""
        acks = [] if self._joinable else list(local.held)

        def args(attempt: int) -> list[Arg]:
            if attempt:
                local.recover = True  # a lost reply may have handed us items
            recover = int(local.recover)
            return [local.consumer, max_items, _ms(self.ref.lease), recover, *acks]

        try:
            status, rest = self._call(lua.TAKE, args, deadline)
        except ChannelError:
            local.recover = True  # its reply may be lost: what it took is pending for us
            raise
        if status == b"end":
            local.held.clear()
            local.ended = True
            raise EndOfChannel("the channel has ended")
        self._joinable = bool(as_int(rest[0]))
        if not self._joinable:
            local.held.clear()
        if status == b"broken":
            raise ChannelBroken(f"{self!r} is broken: {_why(rest[1])}")
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
            self._check_new(local, pairs)
        local.backlog.extend(pairs)
        return True

    def _check_new(self, local: _Local, pairs: list[tuple[bytes, bytes]]) -> None:
        """New items come in increasing id order: one that comes again means lost data."""
        for item_id, _ in pairs:
            number = int(item_id.partition(b"-")[0])
            if number <= local.last_new:
                try:
                    self._call(lua.LOST, [], time.monotonic() + 1.0)
                finally:
                    self._server_lost()
            local.last_new = number

    def ready_fd(self, sending: bool) -> int | None:
        return None  # the server tells when to look again: see wait

    def wait(self, sending: bool, timeout: float) -> None:
        """Block until something may have changed, ``timeout``, or a short slice passes.

        A server that does not answer within the slice is no error here: the
        caller decides, by its own deadline, whether to give up.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        local = self._here()
        try:
            if local.handed or local.born:
                self._settle(local, True, deadline)
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

    def _read_blocking(self, local: _Local, deadline: float | None) -> None:
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
            if reply:
                stream = as_list(reply[0])
                pairs: list[tuple[bytes, bytes]] = []
                for entry in as_list(stream[1]):
                    item_id, fields = as_list(entry)
                    values = as_list(fields)
                    data = dict(zip(values[::2], values[1::2], strict=True)).get(b"d")
                    if data is not None:
                        pairs.append((as_bytes(item_id), as_bytes(data)))
                self._check_new(local, pairs)
                local.backlog.extend(pairs)

    def break_channel(self, why: str) -> None:
        """Break the channel for every handle, anywhere; their ``ChannelBroken`` says ``why``."""
        self._call(lua.BREAK, [why], None)

    # -- joinable channels and statistics -------------------------------------------------

    def stats(self) -> ChannelStats:
        """The channel's numbers now (see ``ChannelStats``)."""
        local = self._here()
        if local.handed:
            self._settle(local, False, None)
        status, rest = self._call(lua.STATS, [], None)
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
        local = self._here()
        if self._joinable is None:
            self.stats()
        if not self._joinable:
            not_joinable("task_done()")
        with local.take_lock:
            if not local.held:
                nothing_to_mark()
            self._call(lua.DONE, [local.held[0]], None)
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
        """Extend the leases this process holds on the channel (called by the lease thread).

        Those are its own as a sender and a receiver, those it holds for the
        children it started with a handle (while they run), and, in such a
        child, the ones held for it. Waits at most a third of a lease.
        """
        local = self._local
        if local is None or local.pid != me.pid or self._lost:
            return
        deadline = time.monotonic() + self.ref.lease / 3
        if local.handed or local.born:
            self._settle(local, True, deadline)
        members = [f"{t}{local.member_suffix}" for t in list(local.sent_on)]
        with local.born_lock:
            members += local.born
        consumer = local.consumer if local.receiving else ""
        suffix = born_suffix(me.pid, me.stamp) if self._born_pid == me.pid else ""
        if members or consumer or suffix:
            self._call(lua.RENEW, [_ms(self.ref.lease), consumer, suffix, *members], deadline)

    def at_exit(self) -> None:
        """Acknowledge the items this process took, so none is delivered again."""
        local = self._local
        if local is None or local.pid != me.pid or local.ended or self._lost:
            return
        if local.receiving and not self._joinable:
            acks: list[Arg] = [local.consumer, *local.held]
            self._call(lua.CLOSE_RECEIVER, acks, time.monotonic() + CONNECT_TIMEOUT)
            local.held.clear()
            local.receiving = False

    # -- plumbing ------------------------------------------------------------------------

    def _here(self) -> _Local:
        local = self._local
        if local is None or local.pid != me.pid:
            local = _Local(self.ref.server, self.ref.reconnect)
            self._local = local
            weakref.finalize(self, local.client.disconnect)
        return local

    def _call(
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
        if self._lost:
            self._server_lost()
        known: list[Arg] = [self._epoch, self._seen]

        def given(attempt: int) -> list[Arg]:
            return [*known, *(args(attempt) if callable(args) else args)]

        reply = self._here().client.script(source, self.ref.keys, given, deadline)
        status, version, epoch = as_bytes(reply[0]), as_int(reply[1]), as_bytes(reply[2])
        self._seen = max(self._seen, version)
        if epoch and not self._epoch:
            self._epoch = epoch.decode()
        if status == b"lost":
            self._server_lost()
        return status, reply[3:]

    def _server_lost(self) -> NoReturn:
        self._lost = True
        local = self._local
        if local is not None and local.pid == me.pid:
            local.client.disconnect()  # every later call raises at once: nothing more to ask
        raise ChannelBroken(
            f"the redis server at {self.ref.server.describe()} lost the data of channel "
            f"{self.ref.name!r} (restarted without persistence, flushed, restored from an "
            "older snapshot, or failed over to a replica that lagged): items may be gone"
        )

    def __reduce__(self) -> tuple[object, ...]:
        known = (self._epoch, self._seen)
        return (_rebuild, (self.ref, self._serializer, self._limit, self._joinable, known))

    def __repr__(self) -> str:
        return f"{self.ref.server.describe()}/{self.ref.name}"


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
        core._born_pid = me.pid  # pyright: ignore[reportPrivateUsage]
        core._here()  # pyright: ignore[reportPrivateUsage]  (here, not in the lease thread)
        hold(core)
    return core


def _why(reason: object) -> str:
    """What a broken channel's record says, or what breaks a channel by itself."""
    said = as_bytes(reason).decode(errors="replace")
    return said or (
        "every process that sent on an open sender handle has died (its lease lapsed) "
        "without closing it"
    )


def _new_token() -> int:
    """A handle token chosen here, so that opening it again after a lost reply is harmless."""
    return secrets.randbits(62) | 1


def _positive(option: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{option} is a number of seconds > 0, not {value!r}")


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
