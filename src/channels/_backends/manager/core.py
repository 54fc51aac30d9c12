"""The manager backend seen from a client process: the channel's core.

A ``ManagerCore`` names one channel in one server: the server's address, its
nonce (so a new server at the same address is not taken for the old one) and
the channel's id there. That is all it pickles, so, unlike a local channel, it
can be pickled at any time and sent anywhere; it never pickles the authkey.
The connections it calls through are in ``link``, the channel itself
in the server (``state``).

Deadlines. Every call comes back by its deadline (a ``put`` or ``take`` by the
one its caller gave, a ``wait`` by its timeout, at least ``MIN_ANSWER`` after it
began), whatever the server does, and a call that gave up has done nothing:

* A ``put`` or ``take`` with no deadline is one round trip that waits for its
  answer as long as the connection lives (a server that dies closes it; TCP
  keepalive notices a machine that vanished): it never gives up, so it has
  nothing to undo.
* A ``put`` or ``take`` with a deadline is two steps. The server *stages* the
  items (a put's hold room that no receiver sees; a take's leave the queue but
  still count as waiting) and answers; the client, once it has the answer,
  sends ``commit`` on the same connection (it gets no answer), and only then
  returns. A client that had no answer in time drops the connection instead.
  The server reads a connection's messages in order, so it sees the commit
  exactly when the client counted the call as done, and when it sees the
  connection close first it undoes the staged step (taken items go back to
  the front of the queue, in order). The client alone decides, by a message it
  sent or did not send; no answer has to reach it in time for the books to be
  right. So an item is in the channel once iff ``send`` returned, and is
  received once iff ``recv`` returned it: a caller told ``ChannelTimeout`` or
  ``WouldBlock`` may send again, and a receiver that gave up left its items to
  the others.
* Staged items are not the end: while some are staged, a receiver that finds
  the queue empty waits instead of seeing ``EndOfChannel``, since they may
  still come back.
* Connecting, proving the key and writing the request are bounded by the same
  deadline (socket timeouts), so a stalled server, a lost network or a full
  socket buffer holds no call past it. A ``wait`` asks the server to answer a
  little early; an answer that is late anyway is read and dropped by the next
  call on that connection, which is dropped if it owes more than one.
* The commit costs one more message per call with a deadline: such calls run at
  about 0.6x the rate of calls without one (single items, same machine).
"""

from __future__ import annotations

import contextlib
import os
import time
import weakref
from collections.abc import Sequence
from typing import NamedTuple, cast

from ..._codec.payloads import Payload, plain
from ..._codec.serializers import Serializer, resolve_serializer
from ..._engine.contract import ChannelStats
from ..._engine.core_base import CoreBase
from ..._errors import ChannelBroken, ChannelError, ChannelTimeout, ConfigError, ServerUnreachable
from ..._process.handover import Handed
from ..._process.liveness import host_key, process_stamp, this_process
from ..._process.per_process import PerProcess
from ..._timing import ANSWER_WINDOW, CONNECT_TIMEOUT, MIN_ANSWER
from .keys import env_authkey, key_for, key_source, process_key, to_authkey
from .link import Link, expect_int, expect_pair, link_for
from .manager import ChannelManager, start_local_manager, stop_local_manager
from .options import ManagerOptions
from .wire import Address, describe_address, parse_address

__all__ = ["ChannelRef", "ManagerCore"]


class ChannelRef(NamedTuple):
    """What names a manager-backed channel anywhere: all a ``ManagerCore`` pickles."""

    address: Address
    nonce: int
    cid: int
    first: int
    name: str | None
    maxsize: int
    keysource: str


class ManagerCore(CoreBase):
    """One manager-backed channel as a process sees it; implements ``Core``.

    A process that unpickles it authenticates with the key given for that
    address in this process (a forked child inherits it), else with
    ``CHANNELS_AUTHKEY``, else with its own ``multiprocessing`` authkey, which
    the children of the creator share.
    """

    __slots__ = (
        "__weakref__",
        "_closed",
        "_handed",
        "_link",
        "_receiving",
        "manager",
        "ref",
    )

    def __init__(
        self, ref: ChannelRef, serializer: Serializer, max_message_size: int | None
    ) -> None:
        self.ref = ref
        super().__init__(serializer, max_message_size)
        self._link: PerProcess[Link] = PerProcess()
        self._closed: set[int] = set()
        self._receiving = 0
        # Children being started with a handle until they have a pid, then, where the
        # server cannot see this machine's pids, while they run.
        self._handed = Handed()
        #: The private manager this core started, if any; it stops when the core is collected.
        self.manager: ChannelManager | None = None

    @classmethod
    def open(cls, options: ManagerOptions, half: str = "") -> ManagerCore:
        """Find or start the server, and open the channel there.

        ``half``: ``"sender"`` opens one counted sender handle and refuses a
        channel that has ended; ``"receiver"`` opens none (see ``Hub.open``).
        """
        authkey, address, manager, name = (
            options.authkey,
            options.address,
            options.manager,
            options.name,
        )
        key = None if authkey is None else to_authkey(authkey)
        if half and (name is None or (manager is None and address is None)):
            raise ConfigError(
                f"open_{half} joins a named channel on a running server: give "
                "'manager://HOST:PORT/NAME' (or address= and name=)"
            )
        owner: ChannelManager | None = None
        if manager is not None:
            if address is not None or key is not None:
                raise ConfigError("give a manager, or an address and an authkey, not both")
            where, key = manager.client_params()
        elif address is None:
            owner = start_local_manager(options.context, key)
            where, key = owner.client_params()
        else:
            where = parse_address(address)
            key = key or env_authkey() or process_key()
        source = key_source(where, key, given=authkey is not None)
        try:
            ref, link = _open_on(
                where, key, name, options.maxsize, options.joinable, half=half, source=source
            )
        except BaseException:
            if owner is not None:
                stop_local_manager(owner, os.getpid())
            raise
        core = cls(ref, resolve_serializer(options.serializer), options.max_message_size)
        core._link.set(link)
        if owner is not None:
            core.manager = owner
            weakref.finalize(core, stop_local_manager, owner, os.getpid())
        return core

    # -- the Core protocol ---------------------------------------------------------------

    @property
    def first_token(self) -> int:
        return self.ref.first

    def put(self, token: int, items: Sequence[Payload], deadline: float | None) -> int:
        payload = [plain(data) for data in items]  # a memoryview does not pickle
        answer = self._step("put", (self.ref.cid, token, payload), deadline)
        return expect_int(answer, "put")

    def take(self, max_items: int, deadline: float | None) -> list[Payload]:
        self._receiving = this_process.pid
        if self._handed:
            self._settle(deadline)
        answer: object = self._step("take", (self.ref.cid, max_items), deadline)
        kind = type(answer).__name__
        items = cast("list[object]", answer) if isinstance(answer, list) else None
        if items is None or not all(isinstance(item, bytes) for item in items):
            raise ChannelBroken(f"the manager server answered take with {kind}")
        return cast("list[Payload]", items)

    def ready_fd(self, sending: bool) -> int | None:
        return None  # the server tells when to look again: see wait

    def wait(self, sending: bool, timeout: float) -> None:
        """Ask the server to wait; back by ``timeout`` (or ``MIN_ANSWER``), whatever it does.

        The server is asked to answer a little early, so that the answer is here
        in time; one that is late anyway is read and dropped by the next call.
        """
        wait = min(max(0.0, timeout), ANSWER_WINDOW)
        deadline = time.monotonic() + wait
        if self._handed:
            self._settle(deadline)
        asked = max(0.0, wait - min(MIN_ANSWER, wait / 2))
        with contextlib.suppress(ChannelTimeout):
            self._call("wait", (self.ref.cid, sending, asked), deadline, optional=True)

    def task_done(self) -> None:
        self._call("task_done", (self.ref.cid,))

    def unfinished(self) -> int:
        return expect_int(self._call("unfinished", (self.ref.cid,)), "unfinished")

    def stats(self) -> ChannelStats:
        if self._handed:
            self._settle()
        answer = self._call("stats", (self.ref.cid,))
        numbers = cast("tuple[object, ...]", answer) if isinstance(answer, tuple) else ()
        if len(numbers) != 8 or not all(isinstance(n, int) for n in numbers):
            raise ChannelBroken(f"the manager server answered stats with {answer!r}")
        counts = cast("tuple[int, ...]", numbers)
        waiting, senders, receivers, sent, received, unfinished, ended, broken = counts
        return ChannelStats(
            waiting, senders, receivers, sent, received, unfinished, bool(ended), bool(broken)
        )

    def clone(self, token: int) -> int:
        if self._handed:
            self._settle()
        return expect_int(self._call("clone", (self.ref.cid, token)), "clone")

    def handing_over(self, token: int) -> None:
        """Under spawn or forkserver, the process being started holds handle ``token``.

        It may die before it ever reaches the server (the spawn mistake), so once
        it has a pid this process names it to the server as a sender of that
        handle (``_settle``), at its next call other than a send.
        """
        self._handed.note(token)

    def _settle(self, deadline: float | None = None) -> None:
        """Name each started child that was handed a handle; report the watched ones that died.

        Where the server shares this machine and pid namespace it watches the
        pid itself, even after this process is gone; elsewhere this process
        watches its children while it waits, and reports a death (if it dies
        first, such a child counts once it reaches the server, as before).
        """
        started = self._handed.started()
        dead = self._handed.died()
        cid = self.ref.cid
        host = host_key() if started else ""
        late: list[tuple[int, int, int]] = []  # no answer by the deadline: watch it here
        for pid, token in started:
            stamp = process_stamp(pid)
            try:
                if not self._call("hand_over", (cid, token, pid, stamp, host), deadline):
                    late.append((pid, stamp, token))
            except ChannelTimeout:
                late.append((pid, stamp, token))
            except ChannelError:
                pass  # the server is gone, or refused: nothing to name it to
        for watched in dead:
            try:
                self._call("holder_died", (cid, watched[2]), deadline)
            except ChannelTimeout:
                late.append(watched)  # reported again at the next call
            except ChannelError:
                pass
        if late:
            self._handed.watch(late)

    def close_sender(self, token: int) -> None:
        if self._handed:
            self._settle()
        if token in self._closed:
            return
        with contextlib.suppress(ChannelBroken):  # a server that is gone has nothing to close
            self._call("close_sender", (self.ref.cid, token))
        self._closed.add(token)

    def sender_open(self, token: int) -> bool:
        if token in self._closed:
            return False
        if self._handed:
            self._settle()
        try:
            is_open = bool(self._call("sender_open", (self.ref.cid, token)))
        except ChannelBroken:
            return False  # with its server gone, no handle can send
        if not is_open:
            self._closed.add(token)  # a closed handle never opens again
        return is_open

    def close_receiver(self) -> None:
        if self._receiving == this_process.pid:
            self._receiving = 0
            with contextlib.suppress(ChannelBroken):
                self._call("close_receiver", (self.ref.cid,))

    # -- plumbing ------------------------------------------------------------------------

    def _connect(self) -> Link:
        """This process's link to the server that holds the channel."""
        ref = self.ref
        return link_for(ref.address, key_for(ref.address, ref.keysource))

    def _call(
        self,
        method: str,
        args: tuple[object, ...],
        deadline: float | None = None,
        *,
        staged: bool = False,
        patient: bool = False,
        optional: bool = False,
    ) -> object:
        return self._link.get(self._connect).call(
            self.ref.nonce,
            method,
            args,
            deadline,
            staged=staged,
            patient=patient,
            optional=optional,
        )

    def _step(self, method: str, args: tuple[object, ...], deadline: float | None) -> object:
        """A put or a take: staged with a deadline, else one step that waits for its answer."""
        if deadline is None:
            return self._call(method, (*args, False), patient=True)
        return self._call(method, (*args, True), deadline, staged=True)

    def __reduce__(self) -> tuple[object, ...]:
        return (ManagerCore, (self.ref, self._serializer, self._limit))

    def __repr__(self) -> str:
        ref = self.ref
        name = f"/{ref.name}" if ref.name else f" #{ref.cid}"
        bound = f" maxsize={ref.maxsize}" if ref.maxsize else ""
        return f"manager {describe_address(ref.address)}{name}{bound}"


def _open_on(
    where: Address,
    key: bytes,
    name: str | None,
    maxsize: int,
    joinable: bool,
    *,
    half: str,
    source: str,
) -> tuple[ChannelRef, Link]:
    link = link_for(where, key)
    try:
        args = (name, maxsize, joinable, half) if half else (name, maxsize, joinable)
        answer = link.call(None, "open", args, wait=CONNECT_TIMEOUT)
        nonce = link.nonce()
    except ChannelBroken as exc:
        raise ServerUnreachable(
            f"cannot reach a manager server at {describe_address(where)}: {exc.__cause__ or exc}"
        ) from exc
    cid, token = expect_pair(answer, "open")
    return ChannelRef(where, nonce, cid, token, name, maxsize, source), link
