"""A private redis-server for the tests: started on a free loopback port, stopped by PID.

The server daemonizes, so it is not a descendant of the test process (the leak
checks look for those); it is stopped by the PID in its pidfile. ``shared()``
is one server for a whole run, stopped when the run exits.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

REDIS_SERVER = shutil.which("redis-server")
#: Why the redis tests skip, or None when they can run.
SKIP_REASON = (
    None
    if REDIS_SERVER
    else "redis-server is not installed (Debian/Ubuntu: apt-get install redis-server)"
)

WAIT = 20.0


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


class RedisServer:
    """One redis-server process with its own folder, port and settings."""

    def __init__(self, *, appendonly: bool = False, extra: tuple[str, ...] = ()) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="channels-redis-"))
        self.port = free_port()
        self.appendonly = appendonly
        self.extra = extra
        self.pid = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, name: str | None = None, scheme: str = "redis") -> str:
        return f"{scheme}://{self.address}" + (f"/{name}" if name else "")

    def start(self) -> RedisServer:
        """Start (or restart, keeping its data folder) and wait until it answers."""
        assert REDIS_SERVER is not None
        pidfile = self.folder / "redis.pid"
        pidfile.unlink(missing_ok=True)
        args = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(self.folder),
            "--daemonize",
            "yes",
            "--pidfile",
            str(pidfile),
            "--logfile",
            str(self.folder / "redis.log"),
        ]
        if self.appendonly:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        subprocess.run([*args, *self.extra], check=True, timeout=WAIT)
        deadline = time.monotonic() + WAIT
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert time.monotonic() < deadline, "redis-server did not write its pidfile"
            time.sleep(0.01)
        self.pid = int(pidfile.read_text())
        while not self._answers():
            assert time.monotonic() < deadline, "redis-server did not start answering"
            time.sleep(0.02)
        return self

    def _answers(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=1) as s,
        ):
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server by its PID (SIGKILL: a crash) and wait until it is gone."""
        if self.pid and _running(self.pid):
            os.kill(self.pid, sig)
            deadline = time.monotonic() + WAIT
            while _running(self.pid):
                assert time.monotonic() < deadline, "redis-server did not stop"
                time.sleep(0.01)
        self.pid = 0

    def remove(self) -> None:
        """Stop the server and delete its folder."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def client(self, **options: object) -> redis.Redis:
        """A plain redis-py client, for looking at the server from outside the library."""
        return redis.Redis(host="127.0.0.1", port=self.port, **options)  # type: ignore[arg-type]

    def keys(self, pattern: str = "*") -> list[str]:
        """The keys on the server that match ``pattern``."""
        client = self.client(decode_responses=True)
        try:
            found: list[bytes | str] = client.keys(pattern)  # pyright: ignore[reportUnknownMemberType]
            return sorted(str(key) for key in found)
        finally:
            client.close()


_shared: RedisServer | None = None


def shared() -> RedisServer:
    """One server for the whole run, started on first use and stopped at exit."""
    global _shared
    if _shared is None:
        _shared = RedisServer().start()
        owner = os.getpid()
        os.environ["CHANNELS_REDIS_ADDRESS"] = _shared.address

        def stop(server: RedisServer = _shared) -> None:
            if os.getpid() == owner:
                server.remove()

        atexit.register(stop)
    return _shared
