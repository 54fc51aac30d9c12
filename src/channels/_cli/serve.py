"""``channels serve``: host manager-backed channels in the foreground until told to stop.

Clients open the hosted channels with ``manager://HOST:PORT/NAME`` and the same
authkey. The server unpickles every request it authenticates, so the authkey
is what keeps strangers from running code in it: every server must have one,
long enough not to be guessed.
"""

from __future__ import annotations

import logging
import os
import signal
import stat
import threading
from collections.abc import Callable
from types import FrameType

from .._backends.manager.keys import ENV_AUTHKEY, env_authkey, to_authkey
from .._backends.manager.manager import ChannelManager
from .._backends.manager.server import ChannelServer
from .._backends.manager.wire import Address, describe_address, parse_address
from .._errors import ConfigError

__all__ = ["MIN_AUTHKEY_BYTES", "authkey_from_file", "check_server_key", "serve"]

log = logging.getLogger(__name__)

#: The shortest authkey a server accepts.
MIN_AUTHKEY_BYTES = 32

_KEY_HINT = (
    f"give a secret of at least {MIN_AUTHKEY_BYTES} bytes in {ENV_AUTHKEY} (or, on the "
    "command line, in a file named by --authkey-file), for example the output of: "
    "python -c 'import secrets; print(secrets.token_hex(32))'"
)


def check_server_key(address: Address, authkey: bytes | str | None) -> bytes:
    """The key a server at ``address`` uses: ``authkey``, else ``CHANNELS_AUTHKEY``.

    Every server needs one, loopback included: clients must be able to know it,
    and the server runs what its clients send.

    Raises:
        ConfigError: no key, or a key shorter than ``MIN_AUTHKEY_BYTES``. The
            message never shows the key.
    """
    key = env_authkey() if authkey is None else to_authkey(authkey)
    if key is None:
        raise ConfigError(
            f"refusing to serve on {describe_address(address)} without an authkey: clients "
            f"need one to connect, and it keeps strangers from running code here; {_KEY_HINT}"
        )
    if len(key) < MIN_AUTHKEY_BYTES:
        raise ConfigError(
            f"the authkey is {len(key)} bytes long, too short to be safe; {_KEY_HINT}"
        )
    return key


def authkey_from_file(path: str | os.PathLike[str]) -> bytes:
    """The authkey kept in the file at ``path``, without its trailing line break.

    Raises:
        ConfigError: the file cannot be read, or holds nothing. The message
            never shows what the file holds.
    """
    try:
        with open(path, "rb") as f:
            key = f.read().rstrip(b"\r\n")
            mode = os.fstat(f.fileno()).st_mode
    except OSError as exc:
        raise ConfigError(
            f"cannot read the authkey file {os.fspath(path)!r}: {exc.strerror}"
        ) from None
    if not key:
        raise ConfigError(f"the authkey file {os.fspath(path)!r} is empty")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("the authkey file %r can be read by other users; chmod 600 it", os.fspath(path))
    return key


def serve(
    address: tuple[str, int] | str = ("127.0.0.1", 0),
    authkey: bytes | str | None = None,
    *,
    ready: Callable[[str], object] | None = None,
) -> None:
    """Host channels for other processes and machines until SIGINT or SIGTERM.

    Binds loopback unless told otherwise. Once it listens, it reports the bound
    address (``HOST:PORT``, or the socket path) to ``ready``, or prints
    ``channels: serving on HOST:PORT`` on stdout. A signal stops it cleanly:
    every client connection is closed (their calls raise ``ChannelBroken``) and
    ``serve`` returns. Signals are handled only when called in the main thread.

    Args:
        address: ``(HOST, PORT)``, ``"HOST:PORT"`` (port 0: any free port; IPv6
            hosts such as ``::1`` too) or a Unix socket path.
        authkey: the secret clients must know, at least 32 bytes; default
            ``CHANNELS_AUTHKEY``. Required: a client that fails to prove it gets
            no answer but the refusal, which the server logs at WARNING.
        ready: called once with the bound address when the server listens.

    Raises:
        ConfigError: a bad address or key, or the address cannot be bound.
    """
    where = parse_address(address, listen=True)
    key = check_server_key(where, authkey)
    try:
        server = ChannelManager(address=where, authkey=key).get_server()
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {describe_address(where)}: {exc.strerror or exc}"
        ) from exc
    restore = _stop_on_signals(server)
    try:
        bound = describe_address(server.address)
        log.info("serving channels on %s", bound)
        (ready or _announce)(bound)
        server.serve_forever()
    finally:
        restore()
    log.info("stopped serving channels on %s", bound)


def _announce(bound: str) -> None:
    print(f"channels: serving on {bound}", flush=True)


def _stop_on_signals(server: ChannelServer) -> Callable[[], None]:
    """Make SIGINT and SIGTERM stop ``server``; return what puts the old handlers back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def stop(signum: int, frame: FrameType | None) -> None:
        server.request_stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
