"""Typed channels between processes, over the IPC Python already has.

``open_channel[T](spec)`` returns a ``Channel[T]`` on the ``thread``, ``pipe``,
``queue``, ``simplequeue``, ``manager`` or ``redis`` backend, with one meaning for send,
receive, close and end of channel on all of them, from sync and asyncio code.
"""

from importlib.metadata import PackageNotFoundError, version

from ._backends.manager import ManagerChannel as ManagerChannel
from ._backends.manager.core import ChannelManager as ChannelManager
from ._backends.pipe import PipeChannel as PipeChannel
from ._backends.queue import QueueChannel as QueueChannel
from ._backends.redis import RedisChannel as RedisChannel
from ._backends.simplequeue import SimpleQueueChannel as SimpleQueueChannel
from ._backends.thread import ThreadChannel as ThreadChannel
from ._core import ChannelStats as ChannelStats
from ._duplex import Endpoint as Endpoint
from ._duplex import duplex as duplex
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
from ._open import ChannelOpener as ChannelOpener
from ._open import ChannelOptions as ChannelOptions
from ._open import ReceiverOpener as ReceiverOpener
from ._open import SenderOpener as SenderOpener
from ._open import open_channel as open_channel
from ._open import open_receiver as open_receiver
from ._open import open_sender as open_sender
from ._pool import AsyncResult as AsyncResult
from ._pool import DeadLetter as DeadLetter
from ._pool import Pool as Pool
from ._pool import PoolExecutor as PoolExecutor
from ._pool import ResultIterator as ResultIterator
from ._protocols import Channel as Channel
from ._protocols import Receiver as Receiver
from ._protocols import Sender as Sender
from ._registry import ENTRY_POINT_GROUP as ENTRY_POINT_GROUP
from ._registry import Features as Features
from ._registry import backends as backends
from ._registry import register_backend as register_backend
from ._select import aselect as aselect
from ._select import select as select
from ._serialize import Serializer as Serializer
from ._state.array import Array as Array
from ._state.lock import Lock as Lock
from ._state.proxies import ManagedDict as ManagedDict
from ._state.proxies import ManagedList as ManagedList
from ._state.value import Value as Value

try:
    __version__ = version("typed-channels")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

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
