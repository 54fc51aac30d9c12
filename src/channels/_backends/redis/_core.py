"""One redis channel as a process sees it: non-blocking steps, one readiness wait.

``put`` and ``take`` are each one script call (see ``_scripts``);
``wait`` blocks in the server until an item or the channel's bell arrives, or a
short slice passes, so that lapsed leases are noticed. The blocking ``send`` and
``recv`` the handles call are loops over those three.

What a core pickles is a ``Ref``: the server (without credentials), the
channel's name and its options. Everything tied to one process (the client,
this process's receiver name, the items it holds unacknowledged, sequence
numbers of its puts) lives in a ``_Local`` rebuilt in each process.

Every call that reaches the server is safe to repeat after a lost reply: puts
carry sequence numbers, new handles carry tokens chosen here, and a take that
lost its reply is recovered from this receiver's own pending entries.
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
from typing import TYPE_CHECKING, NoReturn, TypeVar, cast

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
    ServerUnreachable,
)
from ..._handover import Handed
from ..._liveness import me, pid_alive, process_stamp
from ..._policy import not_joinable, nothing_to_mark
from ..._serialize import Serializer, resolve_serializer
from . import _scripts as lua
from ._connection import Server, connect, import_redis, parse_address, remember_password, scrub
from ._lease import born_suffix, hold, process_name

if TYPE_CHECKING:
    import redis
    from redis.commands.core import Script

__all__ = ["RedisCore", "Ref"]

log = logging.getLogger(__name__)

R = TypeVar("R")
#: What a script takes as an argument.
Arg = bytes | str | int | float

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

    def __init__(self, server: Server) -> None:

        self.pid = me.pid
        self.client: redis.Redis = connect(server)
        self.scripts: dict[str, Script] = {}
        serial = next(_serials)
        self.consumer = f"{process_name()}/{serial}"
        self.member_suffix = f"|{process_name()}/{serial}"
        self.held: deque[bytes] = deque()  # ids taken and not yet acknowledged, oldest first
        self.backlog: deque[tuple[bytes, bytes]] = deque()
        self.seqs: dict[int, int] = {}
        self.sent_on: set[int] = set()
        self.closed: set[int] = set()
        self.receiving = False
        self.recover = False
        self.sent_mark = b"0"
        self.bell_mark = b"0"
        #: The channel's maxsize as the last take saw it (-1: no such channel yet).
        self.maxsize = -1
        self.want = 1
        self.down_since: float | None = None
        self.take_lock = threading.Lock()
        self.put_lock = threading.Lock()
        # Children being started with a handle until they have a pid; then the leases
        # held for them while they run: member -> (token, pid, start time).
        self.handed = Handed()
        self.born: dict[str, tuple[int, int, int]] = {}
        self.born_lock = threading.Lock()  # the lease thread settles them too


def _close_client(client: redis.Redis) -> None:
    client.connection_pool.disconnect()


class RedisCore:
    """One redis channel's transport and books; implements ``Core`` (see the module doc)."""

    __slots__ = (
        "__weakref__",
        "_born_pid",
        "_joinable",
        "_limit",
        "_local",
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
        reply = core._call(lua.OPEN, args, None)
        status, known_size, known_joinable = (_int(x) for x in _seq(reply))
        where = f"channel {ref.name!r} at {server.describe()}"
        if status == -1:
            raise ChannelClosed(
                f"the {where} has ended; no sender can be opened on it until its "
                f"end marker expires (option linger, {linger:g} s after it was drained)"
            )
        if status == -2:
            raise ConfigError(
                f"the {where} has maxsize={known_size} and joinable={bool(known_joinable)}; "
                "open it with those or leave them out"
            )
        if status == -3:
            raise ChannelBroken(f"the {where} is broken: its senders died without closing")
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
        if not self._call(lua.CLONE, [token, new], None):
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
            log.debug("could not take out a lease for a child of %r: %s", self, exc)
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
            log.warning("could not close a sender handle of %r: %s", self, exc)
        local.closed.add(token)
        local.sent_on.discard(token)

    def sender_open(self, token: int) -> bool:
        local = self._here()
        if token in local.closed:
            return False
        if local.handed:
            self._settle(local, False, None)
        keys = self.ref.keys
        try:
            is_open = bool(self._run(lambda _: local.client.hexists(keys[1], str(token)), None))
        except ChannelBroken:
            return False
        if not is_open:
            local.closed.add(token)
        return is_open

    def close_receiver(self) -> None:
        local = self._here()
        with local.take_lock:
            if not local.receiving:
                return
            acks = [] if self._joinable else list(local.held)
            try:
                self._call(lua.CLOSE_RECEIVER, [local.consumer, *acks], None)
            except ChannelBroken as exc:
                log.warning("could not close a receiver of %r: %s", self, exc)
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
            base = local.seqs.get(token, 0)
            member = f"{token}{local.member_suffix}"
            lease = _ms(self.ref.lease)
            reply = _seq(self._call(lua.PUT, [token, member, base, lease, *payload], deadline))
            stored, bell = _int(reply[0]), reply[1]
            if stored == -1:
                local.closed.add(token)
                raise ChannelClosed("this sender handle is closed, or the channel has ended")
            if stored == -2:
                raise ChannelBroken(f"{self!r} is broken: every process that sent on it died")
            local.seqs[token] = base + stored
            local.bell_mark = _bytes(bell)
            if token not in local.sent_on:
                local.sent_on.add(token)
                hold(self)
            return stored

    def take(self, max_items: int, deadline: float | None) -> list[Payload]:
        """Take up to ``max_items`` ready items (none if nothing is ready).

        Raises:
            EndOfChannel: the channel ended and every item was taken and acknowledged.
            ChannelBroken: every process that sent on an open handle is gone.
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

        def take(attempt: int) -> object:
            recover = int(local.recover or attempt > 0)
            if attempt:
                local.recover = True  # a lost reply may have handed us items
            args: list[Arg] = [local.consumer, max_items, _ms(self.ref.lease), recover, *acks]
            return self._script(local, lua.TAKE)(keys=self.ref.keys, args=args)

        reply = _seq(self._run(take, deadline))
        status = _bytes(reply[0])
        if len(reply) > 1:
            self._joinable = bool(_int(reply[1]))
        if not self._joinable:
            local.held.clear()
        if status == b"end":
            raise EndOfChannel("the channel has ended")
        if status == b"broken":
            raise ChannelBroken(
                f"{self!r} is broken: every process that sent on an open sender handle "
                "has died (its lease lapsed) without closing it"
            )
        if status == b"none":
            local.recover = False
            local.sent_mark, local.bell_mark = _bytes(reply[2]), _bytes(reply[3])
            local.maxsize = _int(reply[4])
            return False
        pairs = [(_bytes(reply[i]), _bytes(reply[i + 1])) for i in range(2, len(reply), 2)]
        if status == b"again":
            local.recover = False
            known = set(local.held) | {item_id for item_id, _ in local.backlog}
            local.backlog.extend(pair for pair in pairs if pair[0] not in known)
            return True
        local.backlog.extend(pairs)
        return True

    def ready_fd(self, sending: bool) -> int | None:
        return None  # the server tells when to look again: see wait

    def wait(self, sending: bool, timeout: float) -> None:
        """Block until something may have changed, ``timeout``, or a short slice passes."""
        deadline = time.monotonic() + max(0.0, timeout)
        for_put = sending
        local = self._here()
        if local.handed or local.born:
            self._settle(local, True, deadline)
        if not for_put and local.maxsize == 0 and local.receiving:
            self._read_blocking(local, deadline)
            return
        block = int(remaining(deadline, self._slice) * 1000)
        if block <= 0:
            return
        keys = self.ref.keys
        streams: dict[str, bytes] = {} if for_put else {keys[2]: local.sent_mark + b"-0"}
        streams[keys[6]] = local.bell_mark + b"-0"
        self._run(lambda _: local.client.xread(streams, count=1, block=block), deadline)  # type: ignore[arg-type]

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

        def read(attempt: int) -> object:
            if attempt:
                local.recover = True  # a lost reply may have handed us items
            try:
                return local.client.xreadgroup(
                    "g", local.consumer, {keys[2]: ">"}, count=local.want, block=block
                )
            except redis.ResponseError:  # the channel was removed (ended and drained)
                local.maxsize = -1
                return None

        with local.take_lock:
            reply = _seq(self._run(read, deadline) or [])
            if reply:
                stream = _seq(reply[0])
                for entry in _seq(stream[1]):
                    item_id, fields = _seq(entry)
                    data = cast("dict[object, object]", fields).get(b"d")
                    if data is not None:
                        local.backlog.append((_bytes(item_id), _bytes(data)))

    # -- joinable channels and statistics -------------------------------------------------

    def stats(self) -> ChannelStats:
        """The channel's numbers now (see ``ChannelStats``)."""
        local = self._here()
        if local.handed:
            self._settle(local, False, None)
        reply = [_int(x) for x in _seq(self._call(lua.STATS, [], None))]
        exists, sent, received, done, ended, broken, joinable, senders, receivers, bell = reply
        if exists:
            self._joinable = bool(joinable)
            self._here().bell_mark = str(bell).encode()
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
        child, the ones held for it.
        """
        local = self._local
        if local is None or local.pid != me.pid:
            return
        if local.handed or local.born:
            self._settle(local, True, time.monotonic())
        members = [f"{t}{local.member_suffix}" for t in list(local.sent_on)]
        with local.born_lock:
            members += local.born
        consumer = local.consumer if local.receiving else ""
        suffix = born_suffix(me.pid, me.stamp) if self._born_pid == me.pid else ""
        if members or consumer or suffix:
            script = self._script(local, lua.RENEW)
            script(keys=self.ref.keys, args=[_ms(self.ref.lease), consumer, suffix, *members])

    def at_exit(self) -> None:
        """Acknowledge the items this process took, so none is delivered again."""
        local = self._local
        if local is not None and local.pid == me.pid and local.receiving and not self._joinable:
            script = self._script(local, lua.CLOSE_RECEIVER)
            script(keys=self.ref.keys, args=[local.consumer, *local.held])
            local.held.clear()
            local.receiving = False

    # -- plumbing ------------------------------------------------------------------------

    def _here(self) -> _Local:
        local = self._local
        if local is None or local.pid != me.pid:
            local = _Local(self.ref.server)
            self._local = local
            weakref.finalize(self, _close_client, local.client)
        return local

    def _script(self, local: _Local, source: str) -> Script:
        script = local.scripts.get(source)
        if script is None:
            script = local.scripts[source] = local.client.register_script(source)
        return script

    def _call(self, source: str, args: Sequence[Arg], deadline: float | None) -> object:
        local = self._here()
        script = self._script(local, source)
        result: object = self._run(lambda _: script(keys=self.ref.keys, args=args), deadline)
        return result

    def _run(self, call: Callable[[int], R], deadline: float | None) -> R:
        """Run ``call`` until the server answers; a lost connection is retried.

        Raises ``ChannelTimeout`` once the deadline passes, ``ChannelBroken`` once the
        server has been unreachable longer than the option ``reconnect``.
        """
        import redis  # noqa: PLC0415 (optional: imported only when used)

        local = self._here()
        attempt = 0
        while True:
            try:
                result = call(attempt)
            except redis.AuthenticationError as exc:
                raise ConfigError(
                    f"the redis server at {self.ref.server.describe()} refused the "
                    f"credentials: {self._scrub(exc)}"
                ) from exc
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                now = time.monotonic()
                if local.down_since is None:
                    local.down_since = now
                    log.warning(
                        "lost the redis server at %s (%s); reconnecting",
                        self.ref.server.describe(),
                        self._scrub(exc),
                    )
                self._give_up_if_due(local.down_since, now, deadline, exc)
                pause = min(0.5, 0.02 * 2**attempt)
                if deadline is not None:
                    pause = min(pause, max(0.0, deadline - now))
                time.sleep(pause)
                attempt += 1
                continue
            except redis.RedisError as exc:
                raise ChannelError(
                    f"the redis server at {self.ref.server.describe()} refused a command: "
                    f"{self._scrub(exc)}"
                ) from exc
            if local.down_since is not None:
                log.info("reconnected to the redis server at %s", self.ref.server.describe())
                local.down_since = None
            return result

    def _give_up_if_due(
        self, down_since: float, now: float, deadline: float | None, exc: Exception
    ) -> None:
        where = self.ref.server.describe()
        if now - down_since >= self.ref.reconnect:
            raise ServerUnreachable(
                f"the redis server at {where} has been unreachable for more than "
                f"{self.ref.reconnect:g} s (option reconnect): {self._scrub(exc)}"
            ) from exc
        if deadline is not None and now >= deadline:
            raise ChannelTimeout(
                f"the redis server at {where} is unreachable and the timeout passed: "
                f"{self._scrub(exc)}"
            ) from exc

    def _scrub(self, exc: BaseException) -> str:
        return scrub(str(exc), self.ref.server)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (self.ref, self._serializer, self._limit, self._joinable))

    def __repr__(self) -> str:
        return f"{self.ref.server.describe()}/{self.ref.name}"


def _rebuild(
    ref: Ref, serializer: Serializer, max_message_size: int | None, joinable: bool | None
) -> RedisCore:
    """Unpickle a core; in a process that is starting, keep the leases held for it fresh."""
    core = RedisCore(ref, serializer, max_message_size, joinable)
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        core._born_pid = me.pid  # pyright: ignore[reportPrivateUsage]
        core._here()  # pyright: ignore[reportPrivateUsage]  (here, not in the lease thread)
        hold(core)
    return core


def _new_token() -> int:
    """A handle token chosen here, so that opening it again after a lost reply is harmless."""
    return secrets.randbits(62) | 1


def _positive(option: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{option} is a number of seconds > 0, not {value!r}")


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _seq(reply: object) -> list[object]:
    if isinstance(reply, tuple):
        return list(reply)  # pyright: ignore[reportUnknownArgumentType]
    if not isinstance(reply, list):
        _unexpected(reply)
    return reply  # pyright: ignore[reportUnknownVariableType]


def _int(value: object) -> int:
    if isinstance(value, int | bytes):
        return int(value)
    _unexpected(value)


def _bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, int):
        return str(value).encode()
    _unexpected(value)


def _unexpected(reply: object) -> NoReturn:
    raise ChannelError(f"unexpected reply from the redis server: {type(reply).__name__}")
