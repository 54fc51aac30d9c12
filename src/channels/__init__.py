"""Typed channels between processes, over the IPC Python already has.

``open_channel[T](spec)`` returns a ``Channel[T]`` on the ``thread``, ``pipe``,
``queue``, ``simplequeue``, ``manager`` or ``redis`` backend, with one meaning for send,
receive, close and end of channel on all of them, from sync and asyncio code.

Importing the package loads only the exceptions: every other public name is
imported on first use (PEP 562), so a program, a spawned child or a pool worker
pays only for the parts it touches. Type checkers read the imports under
``TYPE_CHECKING``; ``_LAZY`` says where each name lives at run time.
"""

from typing import TYPE_CHECKING

from ._errors import AuthkeyMissing as AuthkeyMissing
from ._errors import AuthkeyRejected as AuthkeyRejected
from ._errors import ChannelBroken as ChannelBroken
from ._errors import ChannelClosed as ChannelClosed
from ._errors import ChannelError as ChannelError
from ._errors import ChannelTimeout as ChannelTimeout
from ._errors import ConfigError as ConfigError
from ._errors import EndOfChannel as EndOfChannel
from ._errors import PoolBroken as PoolBroken
from ._errors import PoolClosed as PoolClosed
from ._errors import SerializationError as SerializationError
from ._errors import ServerFull as ServerFull
from ._errors import ServerUnreachable as ServerUnreachable
from ._errors import TaskTimeout as TaskTimeout
from ._errors import WorkerCrashed as WorkerCrashed
from ._errors import WouldBlock as WouldBlock

if TYPE_CHECKING:
    from ._backends.local.channel import PipeChannel as PipeChannel
    from ._backends.local.channel import QueueChannel as QueueChannel
    from ._backends.local.channel import SimpleQueueChannel as SimpleQueueChannel
    from ._backends.manager import ManagerChannel as ManagerChannel
    from ._backends.manager.manager import ChannelManager as ChannelManager
    from ._backends.manager.proxies import ManagedDict as ManagedDict
    from ._backends.manager.proxies import ManagedList as ManagedList
    from ._backends.redis import RedisChannel as RedisChannel
    from ._backends.thread import ThreadChannel as ThreadChannel
    from ._codec.serializers import Serializer as Serializer
    from ._duplex import Endpoint as Endpoint
    from ._duplex import duplex as duplex
    from ._engine.contract import ChannelStats as ChannelStats
    from ._engine.select import aselect as aselect
    from ._engine.select import select as select
    from ._open import ChannelOpener as ChannelOpener
    from ._open import ChannelOptions as ChannelOptions
    from ._open import ReceiverOpener as ReceiverOpener
    from ._open import SenderOpener as SenderOpener
    from ._open import open_channel as open_channel
    from ._open import open_receiver as open_receiver
    from ._open import open_sender as open_sender
    from ._pool.executor import PoolExecutor as PoolExecutor
    from ._pool.pool import AsyncResult as AsyncResult
    from ._pool.pool import Pool as Pool
    from ._pool.relay import DeadLetter as DeadLetter
    from ._pool.results import ResultIterator as ResultIterator
    from ._protocols import Channel as Channel
    from ._protocols import Receiver as Receiver
    from ._protocols import Sender as Sender
    from ._registry import ENTRY_POINT_GROUP as ENTRY_POINT_GROUP
    from ._registry import Features as Features
    from ._registry import backends as backends
    from ._registry import register_backend as register_backend
    from ._state.array import Array as Array
    from ._state.lock import Lock as Lock
    from ._state.value import Value as Value

    __version__: str

# Public name -> the private module that defines it, imported on first use.
_LAZY: dict[str, str] = {
    "ManagerChannel": "._backends.manager",
    "ChannelManager": "._backends.manager.manager",
    "PipeChannel": "._backends.local.channel",
    "QueueChannel": "._backends.local.channel",
    "RedisChannel": "._backends.redis",
    "SimpleQueueChannel": "._backends.local.channel",
    "ThreadChannel": "._backends.thread",
    "ChannelStats": "._engine.contract",
    "Endpoint": "._duplex",
    "duplex": "._duplex",
    "ChannelOpener": "._open",
    "ChannelOptions": "._open",
    "ReceiverOpener": "._open",
    "SenderOpener": "._open",
    "open_channel": "._open",
    "open_receiver": "._open",
    "open_sender": "._open",
    "PoolExecutor": "._pool.executor",
    "AsyncResult": "._pool.pool",
    "Pool": "._pool.pool",
    "DeadLetter": "._pool.relay",
    "ResultIterator": "._pool.results",
    "Channel": "._protocols",
    "Receiver": "._protocols",
    "Sender": "._protocols",
    "ENTRY_POINT_GROUP": "._registry",
    "Features": "._registry",
    "backends": "._registry",
    "register_backend": "._registry",
    "aselect": "._engine.select",
    "select": "._engine.select",
    "Serializer": "._codec.serializers",
    "Array": "._state.array",
    "Lock": "._state.lock",
    "ManagedDict": "._backends.manager.proxies",
    "ManagedList": "._backends.manager.proxies",
    "Value": "._state.value",
}


# At run time only: to type checkers, a name missing above is an error, not an object.
if not TYPE_CHECKING:
    from importlib import import_module

    def __getattr__(name: str) -> object:
        """Import a public name's module the first time the name is used, then keep the name."""
        if name == "__version__":
            value: object = _version()
        elif name in _LAZY:
            value = getattr(import_module(_LAZY[name], __name__), name)
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(__all__))

    def _version() -> str:
        # Slow to import (email, zipfile, pathlib), so only when asked.
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            return version("typed-channels")
        except PackageNotFoundError:  # running from a source tree
            return "0.0.0"


__all__ = [
    "ENTRY_POINT_GROUP",
    "Array",
    "AsyncResult",
    "AuthkeyMissing",
    "AuthkeyRejected",
    "Channel",
    "ChannelBroken",
    "ChannelClosed",
    "ChannelError",
    "ChannelManager",
    "ChannelOpener",
    "ChannelOptions",
    "ChannelStats",
    "ChannelTimeout",
    "ConfigError",
    "DeadLetter",
    "EndOfChannel",
    "Endpoint",
    "Features",
    "Lock",
    "ManagedDict",
    "ManagedList",
    "ManagerChannel",
    "PipeChannel",
    "Pool",
    "PoolBroken",
    "PoolClosed",
    "PoolExecutor",
    "QueueChannel",
    "Receiver",
    "ReceiverOpener",
    "RedisChannel",
    "ResultIterator",
    "Sender",
    "SenderOpener",
    "SerializationError",
    "Serializer",
    "ServerFull",
    "ServerUnreachable",
    "SimpleQueueChannel",
    "TaskTimeout",
    "ThreadChannel",
    "Value",
    "WorkerCrashed",
    "WouldBlock",
    "__version__",
    "aselect",
    "backends",
    "duplex",
    "open_channel",
    "open_receiver",
    "open_sender",
    "register_backend",
    "select",
]
