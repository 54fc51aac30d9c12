"""The core of the local backends: a pipe, two robust locks, and an overflow file.

``LocalCore`` joins its parts: the state page (``state``), the descriptors
(``opening``), the locks and their repair (``locks``), putting (``sending``)
and taking (``receiving``); the overflow ring and shared memory have their own
modules.

These are the parts ``multiprocessing.Queue`` is made of, driven synchronously:
there is no feeder thread, so when ``send`` returns the item is out of the
sender's memory and a crash right after loses nothing.

Items travel through the OS pipe when a frame fits in one atomic write
(``PIPE_BUF``) and the pipe has room. Otherwise they go to an overflow file
shared by every process (created unlinked, so nothing is left behind), so an
unbounded channel never makes ``send`` wait, however slow the receivers. While
the overflow holds items every new item goes there too, and receivers empty the
pipe before the overflow, so the order is kept.

The first page of that file holds two robust mutexes (``_robust``), the
channel's ``Ledger`` and a few transport words. The write lock orders writers
and every change to the ledger; the read lock orders readers. A process may take
the write lock while it holds the read lock, never the other way round. Why a
death at any instruction can neither wedge nor corrupt a channel is written out
step by step in ``docs/architecture.md``; ``_steps`` names the points the tests
kill at.

On an unbounded channel a whole ``send_many`` may come as one ``_codec.Batch``
(its items pickled once as a list), stored as one overflow frame and taken
whole or in parts (``overflow``'s docstring gives the format): a receiver
killed while taking has taken at most the ``max_items`` of its call.

A bounded channel counts items sent and taken (``SENT``, ``RECEIVED``); a
reader that takes the last item of a full channel writes a byte into a second
pipe, the *room* pipe, on which full senders wait.
"""

from __future__ import annotations

import contextlib
import os
import time
from multiprocessing import reduction
from multiprocessing.context import get_spawning_popen
from typing import ClassVar, Protocol

from ..._codec.serializers import Serializer, resolve_serializer
from ..._engine.conditions import (
    check_clonable,
    lost_unfinished,
    not_joinable,
    nothing_to_mark,
)
from ..._engine.contract import ChannelStats
from ..._engine.ledger import (
    BROKEN,
    ENDED,
)
from ..._errors import ChannelError, ChannelTimeout
from ..._process.liveness import pid_alive, this_process
from ..._timing import POLL_SLICE
from .opening import close_all, os_reason, pipe, prepare_pipe, side_fds, state_file
from .options import LocalOptions
from .receiving import Receiving
from .sending import Sending
from .state import (
    DONE,
    OVERFLOW_BASE,
    RECEIVED,
    SENT,
    Fds,
    Settings,
)

__all__ = ["LocalCore", "Settings"]


class LocalCore(Sending, Receiving):
    """One local channel's transport and books; see the module docstring."""

    #: Its steps take no lock that is not free when their deadline has passed, and do no
    #: I/O that can stall: an event loop may try them itself (see ``_core.steps_on_loop``).
    steps_on_loop: ClassVar[bool] = True
    __slots__ = ()

    @classmethod
    def open(cls, name: str, options: LocalOptions) -> LocalCore:
        """Build a fresh channel from checked options.

        Raises ``ChannelError`` (never a bare ``OSError``) when the system is out
        of descriptors, memory or disk, and then leaves nothing open.
        """
        size = options.bound
        shm_threshold = options.shm_threshold
        opened: list[int] = []
        try:
            state = state_file(options.spill_dir, opened)
            os.posix_fallocate(state, 0, OVERFLOW_BASE)  # no page of the state is a hole
            reader, writer = pipe(opened)
            packets = prepare_pipe(reader, writer)
            room = pipe(opened, blocking=False) if size else (-1, -1)
            side = side_fds(opened) if shm_threshold else (-1, -1)
            fds = Fds(state, reader, writer, *room, *side)
            settings = Settings(
                name,
                size,
                resolve_serializer(options.serializer),
                options.max_message_size,
                packets,
                options.joinable,
                shm_threshold,
            )
            core = cls(fds, settings, 0)
        except OSError as exc:
            close_all(opened)
            raise ChannelError(f"cannot open a {name} channel: {os_reason(exc)}") from exc
        core._rlock.initialise()
        core._wlock.initialise()
        core._first = core._ledger.initialise()
        core._overflow.initialise()
        return core

    # -- the Core protocol ---------------------------------------------------------

    @property
    def serializer(self) -> Serializer:
        return self._settings.serializer

    @property
    def max_message_size(self) -> int | None:
        return self._settings.max_message_size

    @property
    def first_token(self) -> int:
        return self._first

    @property
    def shm_threshold(self) -> int:
        return self._settings.shm_threshold

    def sender_open(self, token: int) -> bool:
        return self._ledger.is_open(token)

    def clone(self, token: int) -> int:
        with self._books():
            check_clonable(self._ledger, token)
            return self._ledger.open_handle()

    def close_sender(self, token: int) -> None:
        if self._handed:  # often a starter's last call: name the children it started first
            self._settle()
        if not self._ledger.is_open(token):
            return
        with self._books():
            if self._ledger.close_handle(token):
                self._wake()

    def handing_over(self, token: int) -> None:
        """Under spawn or forkserver, the process being started holds handle ``token``.

        Once its pid is known (``_settle``), it is noted as a sender of that handle,
        so a child that dies at start, before it ever sent, breaks the channel
        like any sender that died without closing.
        """
        self._handed.note(token)

    def close_receiver(self) -> None:
        if self._receiving_pid == this_process.pid:
            with self._books():
                self._ledger.forget_receiver(this_process.pid)
            self._receiving_pid = 0

    # -- the Core protocol: readiness, counts ----------------------------------------

    def ready_fd(self, sending: bool) -> int | None:
        """The pipe for receivers; the room pipe for senders of a bounded channel."""
        if not sending:
            return self._rfd
        room = self._fds.room_reader
        return room if room >= 0 else None

    def wait(self, sending: bool, timeout: float) -> None:
        """Wait for the pipe (or the room pipe) up to one poll slice; after an idle
        slice, look for dead peers. It takes no lock that is not free, so with a
        ``timeout`` of 0 it never blocks."""
        if self._handed:
            with contextlib.suppress(ChannelTimeout):  # busy: the next wait notes them
                self._settle(time.monotonic() + timeout)
        fd = self._rfd if not sending else self._fds.room_reader
        if fd < 0:  # an unbounded channel always has room
            return
        if self._poll(fd, min(timeout, POLL_SLICE)):
            if sending:
                with contextlib.suppress(BlockingIOError):
                    os.read(fd, 1 << 16)
            return
        self._look_for_dead(receivers=sending)

    def stats(self) -> ChannelStats:
        words, ledger = self._words, self._ledger
        sent, received = words[SENT], words[RECEIVED]
        flags = ledger.flags
        return ChannelStats(
            waiting=max(0, sent - received),
            senders=ledger.open_handles,
            receivers=ledger.receiver_count(pid_alive),
            sent=sent,
            received=received,
            unfinished=max(0, sent - words[DONE]) if self._settings.joinable else 0,
            ended=bool(flags & ENDED),
            broken=bool(flags & BROKEN),
        )

    def task_done(self) -> None:
        if not self._settings.joinable:
            not_joinable("task_done()")
        if self._receiving_pid != this_process.pid:
            nothing_to_mark()
        with self._books(), self._hold_lock:
            if not self._ledger.holding(self._rentry):
                nothing_to_mark()
            self._words[DONE] += 1  # done before unheld, as for taking
            self._ledger.hold(self._rentry, -1)

    def unfinished(self) -> int:
        if not self._settings.joinable:
            not_joinable("join()")
        words = self._words
        if words[SENT] - words[DONE] <= 0:
            return 0
        # Both locks: no receiver is between taking and holding, or marking and unholding.
        self._take_lock(self._rlock, None)
        try:
            with self._books():
                held = words[RECEIVED] - words[DONE]
                lost = held - self._ledger.held_by_the_living(pid_alive)
                if lost > 0:
                    lost_unfinished(lost)
                return max(0, words[SENT] - words[DONE])
        finally:
            self._rlock.release()

    # -- life cycle ----------------------------------------------------------------

    def __reduce__(self) -> tuple[object, ...]:
        if get_spawning_popen() is None:
            raise ChannelError(
                f"a {self._settings.name} channel can be given to a child process only as an "
                "argument when it starts (multiprocessing.Process(args=...)); to share a channel "
                "with processes that are already running, use the manager backend"
            )
        dup = [reduction.DupFd(fd) if fd >= 0 else None for fd in self._fds.every()]
        return (_rebuild, (dup, self._settings, self._first))

    def __repr__(self) -> str:
        bound = f" maxsize={self._settings.maxsize}" if self._settings.maxsize else ""
        return f"{self._settings.name}{bound}"


class _Detachable(Protocol):
    def detach(self) -> int: ...


def _rebuild(dup: list[_Detachable | None], settings: Settings, first: int) -> LocalCore:
    fds = [d.detach() if d is not None else -1 for d in dup]
    return LocalCore(Fds(*fds), settings, first)
