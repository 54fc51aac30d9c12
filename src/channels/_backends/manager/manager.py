"""``ChannelManager``: a manager server process that holds channels, and its private use.

A channel opened with no address nor manager starts a private one
(``start_local_manager``), which stops with the channel or with its creator.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from multiprocessing.managers import BaseManager
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any, Protocol

from ..._config import ContextSpec
from ..._contexts import resolve_context
from ..._errors import ChannelError, ConfigError
from ..._process.liveness import this_process
from .keys import to_authkey
from .link import connect
from .proxies import DictOpener, ListOpener
from .server import ChannelServer, exit_with
from .wire import Address, describe_address, parse_address

__all__ = ["ChannelManager", "start_local_manager", "stop_local_manager"]

_INITIAL, _STARTED = 0, 1  # BaseManager's states


class _State(Protocol):
    value: int


class ChannelManager(BaseManager):
    """A manager server that holds channels, by name, for processes on this machine or others.

    Run it in a new process with ``with ChannelManager(address, authkey) as m:``
    or ``m.start()``, or in this process with ``m.get_server().serve_forever()``.
    A server process that ``start()`` made stops once this process is gone,
    however it ended; a server meant to outlive it is ``channels serve``.
    Open its channels with ``ManagerChannel[T](manager=m, name=...)``, or from
    anywhere with ``open_channel[T]("manager://HOST:PORT/NAME")`` and the same
    authkey. Opening a name that exists joins that channel, with a sender
    handle of its own.

    Args:
        address: ``(HOST, PORT)`` or ``"HOST:PORT"`` to listen on (port 0: any
            free port; an IPv6 host such as ``::1`` works too), or a Unix socket
            path; default: a private socket that leaves no file behind (an
            abstract socket on Linux, else one in a private temporary folder).
        authkey: the secret that clients prove they know; default: this
            process's ``multiprocessing`` authkey (the children it starts share it).
        ctx: the start method of the server process that ``start()`` makes.
        shutdown_timeout: how long ``shutdown()`` waits before it kills that process.
    """

    _Server = ChannelServer
    # Set by BaseManager.
    _state: _State
    _authkey: bytes
    _address: Address | None
    _process: BaseProcess | None
    _Client: Callable[[Address, bytes], Connection]

    def __init__(
        self,
        address: Address | None = None,
        authkey: bytes | str | None = None,
        *,
        ctx: ContextSpec = None,
        shutdown_timeout: float = 1.0,
    ) -> None:
        super().__init__(
            address=_private_address() if address is None else parse_address(address, listen=True),
            authkey=None if authkey is None else to_authkey(authkey),
            ctx=resolve_context(ctx),
            shutdown_timeout=shutdown_timeout,
        )
        self._Client = connect

    def start(
        self, initializer: Callable[..., object] | None = None, initargs: Iterable[Any] = ()
    ) -> None:
        """Start the server in a new process, which stops by itself once this process is gone."""
        super().start(
            _start_server, (this_process.pid, this_process.stamp, initializer, tuple(initargs))
        )

    def get_server(self) -> ChannelServer:
        """A server listening at the address, to run in this process with ``serve_forever()``."""
        if self._state.value != _INITIAL:
            raise ChannelError("this manager has already started (or shut down)")
        return ChannelServer({}, self._address, bytes(self._authkey), "pickle")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Shut the server down and release what this process held for it."""
        super().__exit__(exc_type, exc, tb)
        _release(self._process)

    @property
    def process(self) -> BaseProcess | None:
        """The server process that ``start()`` made, if it did."""
        return getattr(self, "_process", None)

    def client_params(self) -> tuple[Address, bytes]:
        """The address and key a client of this manager uses; the manager must be running."""
        address = self.address
        if self._state.value != _STARTED or not isinstance(address, tuple | str):
            raise ConfigError(
                "the manager is not running: use it in a 'with' block, or call start() or connect()"
            )
        return address, bytes(self._authkey)

    @property
    def dict(self) -> DictOpener:
        """Make a typed dict in the server: ``manager.dict[str, int]()`` (the manager must run)."""
        return DictOpener(self)

    @property
    def list(self) -> ListOpener:
        """Make a typed list in the server: ``manager.list[str]()`` (the manager must run)."""
        return ListOpener(self)

    def __repr__(self) -> str:
        address = getattr(self, "_address", None)
        where = "" if address is None else f" at {describe_address(address)}"
        states = {_INITIAL: "not started", _STARTED: "running"}
        return f"<ChannelManager{where}, {states.get(self._state.value, 'shut down')}>"


def _private_address() -> Address | None:
    """An address only this manager will use: an abstract socket, which no crash leaves behind."""
    if sys.platform == "linux":
        return f"\0channels-{os.getpid()}-{secrets.token_hex(8)}"
    return None  # a socket in a private temporary folder


def _start_server(
    pid: int,
    stamp: int,
    initializer: Callable[..., object] | None,
    initargs: tuple[object, ...],
) -> None:
    """In a new server process: stop once process ``pid`` is gone; run the user's initializer."""
    exit_with(pid, stamp)
    if initializer is not None:
        initializer(*initargs)


def start_local_manager(context: ContextSpec, authkey: bytes | None) -> ChannelManager:
    """Start a private manager process for one channel; ``stop_local_manager`` ends it."""
    manager = ChannelManager(authkey=authkey, ctx=context)
    try:
        manager.start()
    except (EOFError, OSError) as exc:  # the server process died before it listened
        raise ChannelError(f"the channel's manager process failed to start: {exc!r}") from exc
    return manager


def stop_local_manager(manager: ChannelManager, creator: int) -> None:
    """Shut down a manager that ``start_local_manager`` started in process ``creator``."""
    if os.getpid() != creator:
        return
    manager.shutdown()
    _release(manager.process)


def _release(process: BaseProcess | None) -> None:
    """Close a stopped server process's handles (they would stay open until it is collected)."""
    if process is not None:
        with contextlib.suppress(ValueError):  # still running after shutdown's kill: leave it
            process.close()
