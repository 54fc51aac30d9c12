"""Exceptions raised by channels, kept in one module to avoid import loops.

Every error is named after who caused it::

    ChannelError                      base of everything raised here
    ├── ChannelClosed                 you closed this handle (or the channel ended) and used it
    │   └── PoolClosed                a call on a pool that was closed or terminated
    ├── EndOfChannel                  every sender closed and the channel is drained: the normal end
    ├── ChannelTimeout (TimeoutError) the timeout you gave passed first
    │   └── TaskTimeout               a pool task ran longer than its ``task_timeout``
    ├── WouldBlock                    a ``*_nowait`` call found nothing to do right now
    ├── ChannelBroken                 the other side went away without closing; the cause is chained
    │   ├── ServerUnreachable         nothing answers at a server's address (refused, no route)
    │   └── PoolBroken                a pool can no longer run work (its initializer raised, ...)
    ├── SerializationError            an item could not be turned into bytes or back
    ├── ServerFull                    a server is out of memory and refuses new items
    ├── ConfigError (ValueError)      a bad backend name, spec or option
    │   └── AuthkeyRejected           a server refused the authkey this process offered
    │       └── AuthkeyMissing        ... and this process was given none to offer
    └── WorkerCrashed                 a pool worker died while running your task
"""

from __future__ import annotations

__all__ = [
    "AuthkeyMissing",
    "AuthkeyRejected",
    "ChannelBroken",
    "ChannelClosed",
    "ChannelError",
    "ChannelTimeout",
    "ConfigError",
    "EndOfChannel",
    "PoolBroken",
    "PoolClosed",
    "SerializationError",
    "ServerFull",
    "ServerUnreachable",
    "TaskTimeout",
    "WorkerCrashed",
    "WouldBlock",
]


class ChannelError(Exception):
    """Base class of every error raised by ``channels``."""


class ChannelClosed(ChannelError):
    """This handle was closed, or the channel has ended, and you tried to use it."""


class EndOfChannel(ChannelError):
    """Every sender closed and every item was received: the normal end, not a failure."""


class ChannelTimeout(ChannelError, TimeoutError):
    """The timeout given to a blocking call passed before it could finish.

    Attributes:
        sent: for ``send_many``, how many items of the batch are known to have
            gone before the timeout (they are in the channel). 0 otherwise.
        unsure: how many items after those may or may not be in the channel: a
            server's reply was lost and the timeout passed before it could be
            asked again. 0 on the local backends, and whenever the reply came.
    """

    def __init__(self, message: str = "", *, sent: int = 0, unsure: int = 0) -> None:
        super().__init__(message)
        self.sent = sent
        self.unsure = unsure

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_timeout, (str(self), self.sent, self.unsure))


class TaskTimeout(ChannelTimeout):
    """A pool task ran longer than its ``task_timeout``; the pool replaced its worker."""

    def __reduce__(self) -> tuple[object, ...]:
        return (TaskTimeout, (str(self),))


class PoolClosed(ChannelClosed):
    """A call on a pool that was closed or terminated, or that stopped before the call ended."""


class WouldBlock(ChannelError):
    """A ``*_nowait`` call would have had to wait."""


class ChannelBroken(ChannelError):
    """The other side is gone without closing: a peer died, or the server stopped."""


class ServerUnreachable(ChannelBroken):
    """No server answers at the address: nothing listens there, or the network fails."""


class PoolBroken(ChannelBroken):
    """A pool can no longer run work: its initializer raised, or its workers cannot start."""


class SerializationError(ChannelError):
    """An item could not be serialized in ``send`` or deserialized in ``recv``."""


class ServerFull(ChannelError):
    """A server is at its memory limit and refuses new items; receivers can still drain it."""


class ConfigError(ChannelError, ValueError):
    """A backend name, spec or option is wrong or cannot be honoured."""


class AuthkeyRejected(ConfigError):
    """A server refused the authkey this process offered: the keys differ."""


class AuthkeyMissing(AuthkeyRejected):
    """A server wants an authkey and this process was given none (``authkey=``, the environment)."""


class WorkerCrashed(ChannelError):
    """A pool worker process died (killed, ``os._exit``, a crash in C) while running a task.

    Attributes:
        pid: the process id of the worker that died.
        exitcode: its exit code, negative for the signal that killed it (as in
            ``multiprocessing.Process.exitcode``), or ``None`` if unknown.
    """

    def __init__(self, message: str, *, pid: int | None = None, exitcode: int | None = None):
        super().__init__(message)
        self.pid = pid
        self.exitcode = exitcode

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_worker_crashed, (str(self), self.pid, self.exitcode))


def _rebuild_timeout(message: str, sent: int, unsure: int = 0) -> ChannelTimeout:
    return ChannelTimeout(message, sent=sent, unsure=unsure)


def _rebuild_worker_crashed(message: str, pid: int | None, exitcode: int | None) -> WorkerCrashed:
    return WorkerCrashed(message, pid=pid, exitcode=exitcode)
