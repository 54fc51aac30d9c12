"""The hub: the one object of a manager server that clients call, holding its channels.

Clients open channels through it (by name or anonymous) and move their items;
``state`` holds each channel, ``store`` the managed dicts and lists. It also
keeps the server's view of its clients: which connections are open and which
process each belongs to.

A client process names itself to the server with one idle *anchor* connection:
the anchor's number is the process's identity in the channels' ledgers, and
the anchor closing is the process's death. Its other connections, one per
thread, carry the calls. A child that was handed a sender handle as it started
may die before it ever connects; the process that started it names it by pid
(``hand_over``) where pids mean the same here, and otherwise reports its death
(``holder_died``).
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
from multiprocessing.connection import Connection

from ..._engine.conditions import Condition, error
from ..._engine.ledger import BROKEN
from ..._errors import ChannelError
from ..._process.liveness import host_key, pid_alive
from .state import ChannelState
from .store import ObjectStore

__all__ = ["FINAL_KEPT", "GONE", "Hub", "caller"]

log = logging.getLogger(__name__)

#: The identity in a channel's books of a holder reported dead (see ``Hub.alive``).
GONE = -(1 << 62)
#: How many dropped channels at most keep their counts for the processes that used them.
FINAL_KEPT = 10_000


class _Caller(threading.local):
    """The client connection that the current server thread serves."""

    conn: Connection | None = None
    cid: int = 0
    session: int = 0
    #: The put or take this connection staged and has not committed: (channel, items, is_put).
    pending: tuple[ChannelState, list[bytes], bool] | None = None

    def gone(self) -> bool:
        """Whether the client hung up: its socket is readable while a call of its own is pending."""
        conn = self.conn
        if conn is None:
            return False
        try:
            return conn.poll(0)
        except (OSError, EOFError, ValueError):
            return True


caller = _Caller()


class Hub:
    """The object clients call: opens channels (by name or anonymous) and runs their calls.

    A channel that is over (ended or broken) and drained is dropped. Its id stays
    meaningful: a later call on it answers as an ended channel would, or raises
    ``ChannelBroken`` again for a broken one. A name whose channel is over and
    drained names a fresh channel at its next open.
    """

    EXPOSED = (
        "hello",
        "attach",
        "open",
        "put",
        "take",
        "commit",
        "wait",
        "stats",
        "task_done",
        "unfinished",
        "clone",
        "close_sender",
        "sender_open",
        "hand_over",
        "holder_died",
        "close_receiver",
        "new_object",
        "call_object",
        "hold_object",
        "drop_object",
    )
    #: Calls that get no answer: the client goes on without waiting for one.
    QUIET = frozenset({"commit", "drop_object"})

    def __init__(self) -> None:
        self.nonce: int = secrets.randbits(62) | 1
        self._lock = threading.Lock()
        self._channels: dict[int, ChannelState] = {}
        self._names: dict[str, int] = {}
        self._broken: dict[int, int] = {}  # channel -> why it broke
        # Channels dropped while a session that used them lives (the newest FINAL_KEPT):
        # (sent, received, name, those sessions) at the end. While it lasts, the name
        # still names it to open_sender and open_receiver (a plain open starts afresh).
        self._final: dict[int, tuple[int, int, str | None, set[int]]] = {}
        self._final_by_session: dict[int, set[int]] = {}
        self._ids = itertools.count(1)
        self._next = 1
        self._open_conns: set[int] = set()
        self._sessions: set[int] = set()
        self._objects = ObjectStore()
        self._host = host_key()

    # -- connections (called by the server) ---------------------------------------

    def alive(self, session: int, stamp: int = 0) -> bool:
        """Whether the process named ``session`` still holds its anchor connection.

        A negative number names a child that was handed a sender handle as it
        started (``hand_over``): ``-pid``, alive while that process runs, or
        ``GONE``, a holder reported dead.
        """
        if session < 0:
            return session != GONE and pid_alive(-session, stamp)
        return session in self._open_conns

    def connected(self, cid: int) -> None:
        """Connection ``cid`` is open."""
        self._open_conns.add(cid)

    def disconnected(self, cid: int) -> None:
        """Connection ``cid`` closed; if it was a process's anchor, that process is gone."""
        self._open_conns.discard(cid)
        if cid in self._sessions:
            self._sessions.discard(cid)
            with self._lock:
                states = list(self._channels.values())
                for dropped in self._final_by_session.pop(cid, ()):
                    final = self._final.get(dropped)
                    if final is not None:
                        final[3].discard(cid)
                        if not final[3]:
                            self._forget_final(dropped)
            for state in states:  # waiters look for dead peers now, not at their next slice
                state.forget(cid)
            self._objects.release(cid)

    def abort(self) -> None:
        """The calling connection closed: undo the put or take it staged and never committed."""
        pending, caller.pending = caller.pending, None
        if pending is not None:
            state, items, is_put = pending
            if is_put:
                state.abort_put(len(items))
            else:
                state.abort_take(items)

    # -- calls from clients ----------------------------------------------------------

    def hello(self) -> tuple[int, int]:
        """Make the calling connection its process's anchor; return (server nonce, session)."""
        session = caller.cid
        if not session:
            raise ChannelError("not called from a client connection")
        self._sessions.add(session)
        caller.session = session
        return self.nonce, session

    def attach(self, session: int) -> int:
        """Say which process the calling connection belongs to; return the server nonce."""
        caller.session = session
        return self.nonce

    def open(
        self, name: str | None, maxsize: int, joinable: bool = False, half: str = ""
    ) -> tuple[int, int]:
        """Open channel ``name`` (a new one if None, or if it is over): (channel id, handle).

        ``half``: ``"sender"`` refuses a channel that is over (``ChannelClosed``);
        ``"receiver"`` opens no handle (0), and a new channel it makes waits for
        its first sender instead of ending.
        """
        session = caller.session
        with self._lock:
            if name is not None and name in self._names:
                state = self._channels.get(self._names[name])
                if state is None and half and self._names[name] in self._final:
                    if half == "receiver":
                        return self._names[name], 0  # it sees the end, or the break
                    raise error(Condition.SENDER_REFUSED, name, True)
                if state is not None and not state.finished:
                    if state.maxsize != maxsize or state.joinable != joinable:
                        raise error(
                            Condition.MISMATCH,
                            *(name, "maxsize", state.maxsize, maxsize),
                            *("joinable", state.joinable, joinable),
                        )
                    if session:
                        state.users.add(session)
                    if half == "receiver":
                        return state.cid, 0
                    token = state.open_handle()
                    if not token and half == "sender":
                        raise error(Condition.SENDER_REFUSED, name, False)
                    return state.cid, token
            cid = next(self._ids)
            self._next = cid + 1
            state = ChannelState(
                cid, name, maxsize, self.alive, joinable, with_sender=half != "receiver"
            )
            if session:
                state.users.add(session)
            self._channels[cid] = state
            if name is not None:
                self._names[name] = cid
            log.debug("opened %r", state)
            return cid, 0 if half == "receiver" else state.first

    def put(self, cid: int, token: int, items: list[bytes], staged: bool = False) -> int:
        """Put what fits of ``items`` in channel ``cid`` for handle ``token``; how many went.

        ``staged``: they wait for the caller's ``commit`` (see ``state``).
        """
        state = self._state(cid)
        if state is None:
            raise self._over(cid, Condition.SENDER_CLOSED)
        self.abort()  # a client commits before its next call: this is only ever a stray
        count = state.put(_calling(), token, items)
        if count:
            caller.pending = (state, items[:count], True)
            if not staged:
                self.commit()
        return count

    def take(self, cid: int, max_items: int, staged: bool = False) -> list[bytes]:
        """Take up to ``max_items`` ready items of channel ``cid`` (``staged``: as ``put``)."""
        state = self._state(cid)
        if state is None:
            raise self._over(cid, Condition.ENDED)
        self.abort()
        try:
            got = state.take(_calling(), max_items)
        finally:
            if state.finished:
                self._retire(state)
        if got:
            caller.pending = (state, got, False)
            if not staged:
                self.commit()
        return got

    def commit(self) -> None:
        """Make the put or take that the calling connection staged final."""
        pending, caller.pending = caller.pending, None
        if pending is None:
            return
        state, items, is_put = pending
        if is_put:
            state.commit_put(items)
        else:
            state.commit_take(caller.session, len(items))
            if state.finished:
                self._retire(state)

    def wait(self, cid: int, sending: bool, timeout: float) -> None:
        """Wait until a put (or take) on channel ``cid`` may succeed, or ``timeout``."""
        state = self._state(cid)
        if state is not None:
            state.wait(sending, timeout)

    def stats(self, cid: int) -> tuple[int, ...]:
        """Channel ``cid``'s counts; a dropped channel reads as ended (or broken) and empty."""
        state = self._state(cid)
        if state is None:
            sent, received, _, _ = self._final.get(cid, (0, 0, None, set()))
            return (0, 0, 0, sent, received, 0, 1, int(cid in self._broken))
        return state.stats()

    def task_done(self, cid: int) -> None:
        """Mark the calling process's oldest item of channel ``cid`` not yet marked as done."""
        state = self._state(cid)
        if state is None:
            raise error(Condition.OVER_MARKED)
        state.task_done(_calling().session)
        if state.finished:
            self._retire(state)

    def unfinished(self, cid: int) -> int:
        """Items of channel ``cid`` sent and not marked done."""
        state = self._state(cid)
        return 0 if state is None else state.unfinished()

    def clone(self, cid: int, token: int) -> int:
        """Open another sender handle on channel ``cid``."""
        state = self._state(cid)
        if state is None:
            raise self._over(cid, Condition.CLONE_CLOSED)
        return state.clone(token)

    def close_sender(self, cid: int, token: int) -> None:
        """Close handle ``token`` of channel ``cid``."""
        state = self._state(cid)
        if state is not None:
            state.close_sender(token)
            if state.finished:
                self._retire(state)

    def sender_open(self, cid: int, token: int) -> bool:
        """Whether handle ``token`` of channel ``cid`` is open."""
        state = self._state(cid)
        return state is not None and state.sender_open(token)

    def hand_over(self, cid: int, token: int, pid: int, stamp: int, host: str) -> bool:
        """Count process ``pid`` as a sender of ``token`` from now: a child handed it as it started.

        Only where ``host`` says that the pid means the same process here (the
        caller's machine and pid namespace); returns whether it could.
        """
        if not host or host != self._host or pid <= 0:
            return False
        state = self._state(cid)
        if state is not None:
            state.note_holder(token, -pid, stamp)
        return True

    def holder_died(self, cid: int, token: int) -> None:
        """A process handed ``token`` as it started has died, seen by the one that started it."""
        state = self._state(cid)
        if state is not None:
            state.note_holder(token, GONE, 0)

    def close_receiver(self, cid: int) -> None:
        """Forget the calling process as a receiver of channel ``cid``."""
        state = self._state(cid)
        if state is not None:
            state.close_receiver(_calling().session)

    def new_object(self, kind: str, initial: bytes) -> int:
        """Hold a new managed dict or list (``store``) for the caller; its number."""
        return self._objects.new(kind, initial, _calling().session)

    def hold_object(self, oid: int) -> bool:
        """Count one more proxy of object ``oid`` in the calling process; whether it exists."""
        return self._objects.hold(oid, _calling().session)

    def drop_object(self, oid: int) -> None:
        """A proxy of object ``oid`` in the calling process is gone; the last frees it."""
        self._objects.drop(oid, _calling().session)

    def call_object(self, oid: int, op: str, args: bytes) -> object:
        """Run one operation on managed object ``oid``."""
        return self._objects.call(oid, op, args)

    # -- books ---------------------------------------------------------------------------

    def _state(self, cid: int) -> ChannelState | None:
        return self._channels.get(cid)

    def _over(self, cid: int, ended: Condition) -> ChannelError:
        """The error for a call on a dropped channel: ``ended``, or ``BROKEN`` if it broke."""
        if cid in self._broken:
            return error(Condition.BROKEN, self._broken[cid])
        if 0 < cid < self._next:
            return error(ended)
        return error(Condition.NO_CHANNEL, cid)

    def _forget_final(self, cid: int) -> None:
        """Drop what is kept of dropped channel ``cid``; the caller holds the lock."""
        final = self._final.pop(cid, None)
        if final is None:
            return
        for session in final[3]:
            self._final_by_session.get(session, set()).discard(cid)
        if final[2] is not None and self._names.get(final[2]) == cid:
            del self._names[final[2]]

    def _retire(self, state: ChannelState) -> None:
        with self._lock, state.lock:
            if not state.finished or self._channels.get(state.cid) is not state:
                return
            if state.ledger.flags & BROKEN:
                self._broken[state.cid] = state.ledger.broken_why
            del self._channels[state.cid]
            users = state.users & self._sessions
            if users:
                self._final[state.cid] = (state.sent, state.received, state.name, users)
                for session in users:
                    self._final_by_session.setdefault(session, set()).add(state.cid)
                if len(self._final) > FINAL_KEPT:
                    self._forget_final(next(iter(self._final)))
            elif state.name is not None and self._names.get(state.name) == state.cid:
                del self._names[state.name]
        log.debug("dropped %r", state)


def _calling() -> _Caller:
    if not caller.session:
        raise ChannelError("this connection has not said which process it belongs to")
    return caller
