"""``Pool.stream``: worker processes that drain one channel into another.

Channels of the local backends can reach a child process only as an argument
of ``Process`` when it starts, so a stream starts its own workers rather than
borrowing the pool's, and hands each one the inbox and a clone of the outbox.
A worker closes its clone when the inbox ends. A monitor thread in the parent
waits for all of them, closes every clone again (a no-op unless the worker
died holding it), closes the caller's outbox handle, which ends the outbox
for its readers, and completes the future.

When one worker fails, the others stop after their current item, so the
future reports the failure promptly even if the inbox never ends.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from typing import cast, final

from .._errors import (
    ChannelError,
    ChannelTimeout,
    EndOfChannel,
    PoolClosed,
    SerializationError,
    WorkerCrashed,
)
from .._protocols import Receiver, Sender
from .._timing import STREAM_POLL, STREAM_STOP_GRACE
from .processes import (
    exit_description,
    ignore_sigint,
    sigint_blocked,
    start_process,
    starting_processes,
    terminate_at_exit,
)
from .remote_errors import describe, dumps, loads, pack_exception, unpack_exception

__all__ = ["StreamRun", "StreamSpec"]


_FINISHED = 0
_FAILED = 1


@final
@dataclass(frozen=True)
class StreamSpec:
    """What every worker of a stream shares: the function, the inbox, the initializer."""

    fn: Callable[[object], object]
    inbox: Receiver[object]
    initializer: Callable[..., object] | None
    initargs: tuple[object, ...]

    @property
    def name(self) -> str:
        """The function's name, for messages."""
        return getattr(self.fn, "__qualname__", None) or describe(self.fn)


def stream_worker_main(
    spec: StreamSpec, outbox: Sender[object], report: Connection, stop: Event
) -> None:
    """In a worker: send ``fn(item)`` for each item of the inbox until it ends or ``stop``."""
    ignore_sigint()
    fn, inbox = spec.fn, spec.inbox
    try:
        if spec.initializer is not None:
            spec.initializer(*spec.initargs)
        while not stop.is_set():
            try:
                item = inbox.recv(timeout=STREAM_POLL)
            except ChannelTimeout:
                continue
            except EndOfChannel:
                break
            result = fn(item)
            while not _send(outbox, result, stop):
                pass
        outbox.close()
    except BaseException as exc:
        stop.set()
        with contextlib.suppress(Exception):
            outbox.close()
        report.send_bytes(dumps((_FAILED, pack_exception(exc))))
    else:
        report.send_bytes(dumps((_FINISHED,)))


def _send(outbox: Sender[object], result: object, stop: Event) -> bool:
    """Try to send for a moment; True once sent or when told to stop."""
    try:
        outbox.send(result, timeout=STREAM_POLL)
    except ChannelTimeout:
        return stop.is_set()
    return True


@final
class _Member:
    """One stream worker as the monitor sees it."""

    __slots__ = ("outbox", "process", "report")

    def __init__(self, process: BaseProcess, report: Connection, outbox: Sender[object]) -> None:
        self.process: BaseProcess = process
        self.report: Connection = report
        self.outbox: Sender[object] = outbox


@final
class StreamRun:
    """The workers, monitor thread and future of one ``Pool.stream`` call."""

    def __init__(
        self, ctx: BaseContext, workers: int, spec: StreamSpec, outbox: Sender[object]
    ) -> None:
        self.future: Future[None] = Future()
        self._name = spec.name
        self._outbox = outbox
        self._stop = ctx.Event()
        self._terminated = False
        self._wake_r, self._wake_w = os.pipe()
        self._wake_lock = threading.Lock()
        self._members: list[_Member] = []
        with sigint_blocked():
            clones: list[Sender[object]] = []
            try:
                for _ in range(workers):
                    clones.append(outbox.clone())
                for number, clone in enumerate(clones, 1):
                    self._members.append(self._start(ctx, number, spec, clone))
            except BaseException:
                self._stop.set()
                for member in self._members:
                    member.process.kill()
                    member.process.join()
                    member.report.close()
                for clone in clones:
                    with contextlib.suppress(Exception):
                        clone.close()
                os.close(self._wake_r)
                os.close(self._wake_w)
                raise
            self.future.set_running_or_notify_cancel()
            self._thread = threading.Thread(
                target=self._monitor, name="channels-pool-stream", daemon=True
            )
            self._thread.start()
        terminate_at_exit(self)

    def _start(
        self, ctx: BaseContext, number: int, spec: StreamSpec, outbox: Sender[object]
    ) -> _Member:
        with starting_processes():
            report, report_w = ctx.Pipe(duplex=False)
            args = (spec, outbox, report_w, self._stop)
            try:
                process = start_process(
                    ctx, stream_worker_main, args, f"channels-stream-{self._name}-{number}"
                )
            except ChannelError:
                report.close()
                raise
            except Exception as exc:
                report.close()
                if isinstance(exc, pickle.PicklingError | TypeError | AttributeError):
                    raise SerializationError(
                        f"cannot pass the function or channels of stream({self._name}) "
                        f"to a worker: {exc}"
                    ) from exc
                raise
            finally:
                report_w.close()
        return _Member(process, report, outbox)

    def terminate(self) -> None:
        """Ask the workers to stop, kill those still running a second later, and wait."""
        self._terminated = True
        self._stop.set()
        with self._wake_lock:
            if self._wake_w >= 0:
                os.write(self._wake_w, b"!")
        if threading.current_thread() is not self._thread:
            self._thread.join(STREAM_STOP_GRACE + 4.0)

    def join(self, timeout: float | None) -> bool:
        """Wait for the stream to end; return whether it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _monitor(self) -> None:
        failure: BaseException | None = None
        pending: dict[int, _Member] = {m.process.sentinel: m for m in self._members}
        kill_at: float | None = None
        while pending:
            if self._terminated and kill_at is None:
                kill_at = time.monotonic() + STREAM_STOP_GRACE
            if kill_at is not None and time.monotonic() >= kill_at:
                for member in pending.values():
                    member.process.kill()
            left = (
                STREAM_POLL * 5 if kill_at is None else max(0.0, kill_at - time.monotonic()) + 0.01
            )
            ready = wait([*pending, self._wake_r], timeout=min(left, STREAM_POLL * 5))
            if self._wake_r in ready:
                os.read(self._wake_r, 512)
            # A sentinel can be held open by a process forked elsewhere: ask the OS too.
            ended = [s for s, m in pending.items() if s in ready or m.process.exitcode is not None]
            for sentinel in ended:
                member = pending.pop(sentinel)
                outcome = self._outcome(member)
                with contextlib.suppress(Exception):
                    member.outbox.close()
                if outcome is not None and failure is None:
                    failure = outcome
                    self._stop.set()
        with self._wake_lock:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1
        try:
            self._outbox.close()
        except Exception as exc:
            failure = failure or exc
        if failure is None and self._terminated:
            failure = PoolClosed(f"the pool was terminated during stream({self._name})")
        if failure is None:
            self.future.set_result(None)
        else:
            self.future.set_exception(failure)

    def _outcome(self, member: _Member) -> BaseException | None:
        """None if the worker finished cleanly, else what went wrong."""
        message: tuple[object, ...] | None = None
        with contextlib.suppress(EOFError, OSError):
            if member.report.poll(0):
                message = cast("tuple[object, ...]", loads(member.report.recv_bytes()))
        member.report.close()
        process = member.process
        process.join(5.0)
        pid, exitcode = process.pid, process.exitcode
        process.close()
        if message is not None and message[0] == _FINISHED:
            return None
        if message is not None and message[0] == _FAILED and isinstance(message[1], bytes):
            return unpack_exception(message[1])
        if self._terminated:
            return None
        return WorkerCrashed(
            f"stream worker {pid} {exit_description(exitcode)} while running stream({self._name})",
            pid=pid,
            exitcode=exitcode,
        )
