"""Which authkey a client process offers a manager server, and where it came from.

Authkeys are never pickled. Where a process's key for a server comes from is
recorded instead (``KEY_GIVEN``, ``KEY_ENV``, ``KEY_PROCESS``), so that a
process that unpickles a channel looks in the same place.
"""

from __future__ import annotations

import multiprocessing
import os

from ..._errors import ConfigError
from .wire import Address

__all__ = [
    "ENV_AUTHKEY",
    "KEY_ENV",
    "KEY_GIVEN",
    "KEY_PROCESS",
    "env_authkey",
    "key_for",
    "key_source",
    "process_key",
    "to_authkey",
]

#: The environment variable a process reads its authkey from when it was given none.
ENV_AUTHKEY = "CHANNELS_AUTHKEY"

KEY_GIVEN, KEY_ENV, KEY_PROCESS = "given", "env", "process"


def to_authkey(value: object) -> bytes:
    """An authkey given as bytes or as text (UTF-8)."""
    if isinstance(value, bytes | bytearray):
        key = bytes(value)
    elif isinstance(value, str):
        key = value.encode()
    else:
        raise ConfigError(f"an authkey is bytes or text, not {type(value).__name__}")
    if not key:
        raise ConfigError("the authkey is empty")
    return key


def env_authkey() -> bytes | None:
    """The authkey in ``CHANNELS_AUTHKEY``, if it is set."""
    text = os.environ.get(ENV_AUTHKEY)
    return text.encode() if text else None


def process_key() -> bytes:
    """This process's ``multiprocessing`` authkey, which the children it starts inherit."""
    return bytes(multiprocessing.current_process().authkey)


#: Keys this process was given explicitly, by server address (never pickled).
_given_keys: dict[Address, bytes] = {}


def key_source(address: Address, key: bytes, *, given: bool) -> str:
    """Record where ``key`` came from; a key given explicitly is remembered for ``address``."""
    if key == process_key():
        return KEY_PROCESS
    if not given and key == env_authkey():
        return KEY_ENV
    _given_keys[address] = key
    return KEY_GIVEN


def key_for(address: Address, source: str) -> bytes:
    """This process's key for ``address``, looked up where the channel's creator found it."""
    if source == KEY_GIVEN and address in _given_keys:
        return _given_keys[address]
    if source in (KEY_GIVEN, KEY_ENV):
        key = env_authkey()
        if key is not None:
            return key
    return process_key()
