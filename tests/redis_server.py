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
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from channels import RedisChannel
from channels._backends.redis.core import RedisCore

REDIS_SERVER = shutil.which("redis-server")
#: Why the redis tests skip, or None when they can run.
SKIP_REASON = (
    None
    if REDIS_SERVER
    else "redis-server is not installed (Debian/Ubuntu: apt-get install redis-server)"
)

WAIT = 20.0


def core_of(handle: object) -> RedisCore:
    """The core behind a channel or a handle (white-box: batches, stats and acks live there)."""
    if isinstance(handle, RedisChannel):
        return handle.core
    core = getattr(handle, "_core", None)
    assert isinstance(core, RedisCore)
    return core


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def _pings(s: socket.socket) -> bool:
    s.sendall(b"PING\r\n")
    return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))


class RedisServer:
    """One redis-server process with its own folder, port and settings."""

    def __init__(
        self,
        *,
        appendonly: bool = False,
        appendfsync: str = "always",
        tls: Path | None = None,
        extra: tuple[str, ...] = (),
        netns: str | None = None,
        bind: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="channels-redis-"))
        #: Run inside this network namespace (``ip netns exec``), listening on ``bind``.
        self.netns = netns
        self.bind = bind
        self.port = port or free_port()
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        #: A folder with ca.crt, server.crt and server.key (see ``make_certificates``): TLS only.
        self.tls = tls
        self.extra = extra
        self.pid = 0

    @property
    def host(self) -> str:
        """The first address it listens on (``bind`` may list several, space-separated)."""
        return self.bind.split()[0]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, name: str | None = None, scheme: str = "redis") -> str:
        return f"{scheme}://{self.address}" + (f"/{name}" if name else "")

    def start(self) -> RedisServer:
        """Start (or restart, keeping its data folder) and wait until it answers."""
        assert REDIS_SERVER is not None
        pidfile = self.folder / "redis.pid"
        pidfile.unlink(missing_ok=True)
        inside = ["ip", "netns", "exec", self.netns] if self.netns else []
        args = [
            *inside,
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            *self.bind.split(),
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
            args += ["--appendonly", "yes", "--appendfsync", self.appendfsync]
        if self.tls is not None:
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"]
            args += ["--tls-cert-file", str(self.tls / "server.crt")]
            args += ["--tls-key-file", str(self.tls / "server.key")]
            args += ["--tls-ca-cert-file", str(self.tls / "ca.crt")]
        subprocess.run([*args, *self.extra], check=True, timeout=WAIT)
        deadline = time.monotonic() + WAIT
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert time.monotonic() < deadline, "redis-server did not write its pidfile"
            time.sleep(0.01)
        self.pid = int(pidfile.read_text())
        while not self._answers():
            if time.monotonic() > deadline:
                self.remove()
                raise AssertionError("redis-server did not start answering")
            time.sleep(0.02)
        return self

    def _answers(self) -> bool:
        if self.netns:
            return self.command("PING") in (b"+PONG", b"-NOAUTH")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as plain:
                if self.tls is None:
                    return _pings(plain)
                context = ssl.create_default_context(cafile=str(self.tls / "ca.crt"))
                with context.wrap_socket(plain, server_hostname="localhost") as s:
                    return _pings(s)
        except OSError:
            return False

    def command(self, *words: str) -> bytes:
        """Send one command (no TLS) and return the first line of its reply, CRLF left off."""
        request = "".join(f"${len(w.encode())}\r\n{w}\r\n" for w in words)
        request = f"*{len(words)}\r\n{request}"
        if self.netns:
            found = subprocess.run(
                ["ip", "netns", "exec", self.netns, "redis-cli", "-h", self.host, "-p",
                 str(self.port), *words],
                capture_output=True, timeout=WAIT, check=False,
            )  # fmt: skip
            out = found.stdout.strip()
            return b"+" + out if out in (b"PONG", b"OK") else out
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=WAIT) as s:
                s.sendall(request.encode())
                reply = b""
                while not reply.endswith(b"\r\n"):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
        except OSError:
            return b""
        return reply.split(b"\r\n", 1)[0]

    def kill_clients(self) -> int:
        """``CLIENT KILL TYPE normal``: the server drops every client connection; how many."""
        reply = self.command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        assert reply.startswith(b":"), reply
        return int(reply[1:])

    def flushall(self) -> None:
        """``FLUSHALL``: every key on the server is gone, as after losing its data."""
        assert self.command("FLUSHALL") == b"+OK"

    def snapshot(self) -> None:
        """``SAVE``: write the RDB snapshot that a restart without AOF loads."""
        assert self.command("SAVE") == b"+OK"

    def full_at(self, headroom: int) -> None:
        """``maxmemory`` (policy noeviction) at what the server uses now plus ``headroom`` bytes."""
        used = self._used_memory()
        reply = self.command("CONFIG", "SET", "maxmemory", str(used + headroom))
        assert reply == b"+OK", reply
        assert self.command("CONFIG", "SET", "maxmemory-policy", "noeviction") == b"+OK"

    def _used_memory(self) -> int:
        client = self.client()
        try:
            info: dict[str, object] = client.info("memory")  # pyright: ignore[reportUnknownMemberType]
            used = info["used_memory"]
            assert isinstance(used, int)
            return used
        finally:
            client.close()

    def pause(self) -> None:
        """SIGSTOP: the server stalls (as in a fork for a snapshot or a paused VM)."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after ``pause``."""
        os.kill(self.pid, signal.SIGCONT)

    def crash(self) -> None:
        """SIGKILL: the server dies at once, keeping only what it had written to disk."""
        self.stop(signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server by its PID (SIGKILL: a crash) and wait until it is gone."""
        if self.pid and running(self.pid):
            os.kill(self.pid, sig)
            with contextlib.suppress(ProcessLookupError):  # a paused server acts once resumed
                os.kill(self.pid, signal.SIGCONT)
            deadline = time.monotonic() + WAIT
            while running(self.pid):
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


def make_certificates(folder: Path) -> Path:
    """A self-signed CA and a server certificate for localhost and 127.0.0.1, made by openssl."""
    openssl = shutil.which("openssl")
    assert openssl is not None

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=WAIT)

    ca_key, ca, key, csr, crt = (
        str(folder / n) for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt")
    )
    # The extensions a strict verifier wants (Python 3.13's default context sets
    # VERIFY_X509_STRICT): a CA marked as one, and a server certificate naming its issuer's key.
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
        "-days", "1", "-subj", "/CN=channels test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
        "-subj", "/CN=localhost")  # fmt: skip
    names = folder / "san.ext"
    names.write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-out", crt, "-days", "1", "-extfile", str(names))  # fmt: skip
    return folder
