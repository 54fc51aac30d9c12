"""The manager backend beyond the shared contract: servers, lifetimes, crashes, ``serve``."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import multiprocessing
import os
import pickle
import secrets
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

import channels
from channels import ChannelBroken, ChannelTimeout, ConfigError
from channels._backends.manager import ManagerChannel
from channels._backends.manager.core import ManagerCore
from channels._backends.manager.keys import ENV_AUTHKEY
from channels._backends.manager.manager import ChannelManager
from channels._cli.serve import MIN_AUTHKEY_BYTES, check_server_key, serve
from channels._engine.sender import SenderHandle

import children
import manager_funcs
from support import METHODS, TESTS, WAIT, drain, join, start

#: Text, so it can go in the environment too; random, so a test can look for it in bytes.
KEY = secrets.token_hex(24)


def _core(ch: channels.Channel[Any]) -> ManagerCore:
    return cast(ManagerCore, cast("SenderHandle[Any]", ch.sender)._core)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in "ZX"
    except FileNotFoundError:
        return True


def _eventually(predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _address(manager: ChannelManager) -> tuple[str, int]:
    return cast(tuple[str, int], manager.address)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server() -> Iterator[ChannelManager]:
    """A manager server on a loopback TCP port, in a process of its own."""
    with ChannelManager(address=("127.0.0.1", 0), authkey=KEY) as manager:
        yield manager


@pytest.fixture
def no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_AUTHKEY, raising=False)


# -- the private manager of a channel -------------------------------------------------


def test_a_private_manager_lives_as_long_as_the_channel_or_a_handle() -> None:
    ch = ManagerChannel[int]()
    manager = _core(ch).manager
    assert manager is not None
    assert manager.process is not None
    pid = manager.process.pid
    assert pid is not None
    assert not _gone(pid)
    assert manager.process in multiprocessing.active_children()  # visible, as the stdlib's own
    sender = ch.sender
    del ch
    gc.collect()
    sender.send(1)  # a handle keeps the server
    assert not _gone(pid)
    sender.close()  # closed, it still keeps the server until it is collected
    assert not _gone(pid)
    del sender
    gc.collect()
    assert _eventually(lambda: _gone(pid), 5), "the manager process outlived its channel"


def _group(pgid: int) -> list[int]:
    """The live processes of process group ``pgid``."""
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] not in "ZX":
                found.append(int(entry))
    return found


def _shm_files(pids: list[int]) -> set[str]:
    """The files in /dev/shm (named semaphores, shared memory) that ``pids`` have mapped."""
    files: set[str] = set()
    for pid in pids:
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        for line in maps.splitlines():
            path = line.split(maxsplit=5)[-1]
            if path.startswith("/dev/shm/") and not path.endswith("(deleted)"):
                files.add(path)
    return files


@contextlib.contextmanager
def _creator(method: str, temp: Path) -> Generator[tuple[int, dict[str, Any]]]:
    """Run ``manager_funcs.creator`` in a session of its own with ``temp`` as its temporary
    folder; yield its pid (also its process group) and its report; kill the group at the end."""
    env = {
        **os.environ,
        "TMPDIR": str(temp),
        "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path]),
    }
    code = f"import manager_funcs; manager_funcs.creator({method!r})"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, env=env, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], WAIT)
        assert ready, "the creator did not report"
        yield proc.pid, json.loads(proc.stdout.readline())
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(WAIT)
        assert proc.stdout is not None
        proc.stdout.close()


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_a_private_server_stops_when_its_creator_is_killed(method: str, tmp_path: Path) -> None:
    with _creator(method, tmp_path) as (pid, report):
        os.kill(pid, signal.SIGKILL)
        assert _eventually(lambda: _gone(report["server"]), 5), "the server outlived its creator"
        # Its users, still alive, see the server go instead of waiting for ever.
        assert _eventually(lambda: all(_gone(user) for user in report["users"]))


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_killing_every_process_of_a_channel_leaves_no_files(method: str, tmp_path: Path) -> None:
    with _creator(method, tmp_path) as (pid, report):
        group = _group(pid)
        assert {report["server"], *report["users"]} <= set(group)
        mapped = _shm_files(group)
        os.killpg(pid, signal.SIGKILL)
        assert _eventually(lambda: not _group(pid))
    assert sorted(os.listdir(tmp_path)) == report["temp_before"]
    assert not {path for path in mapped if os.path.exists(path)}


# -- a server of one's own ---------------------------------------------------------------


def test_named_channels_on_a_running_server(server: ChannelManager) -> None:
    address = _address(server)
    a = ManagerChannel[str](address=address, authkey=KEY, name="jobs")
    b = channels.open_channel[str](f"manager://{address[0]}:{address[1]}/jobs", authkey=KEY)
    c = ManagerChannel[str](manager=server, name="jobs")
    a.send("x")
    assert b.recv(timeout=WAIT) == "x"
    a.close()
    c.close()
    with pytest.raises(ChannelTimeout):  # b's own handle keeps the channel open
        b.recv(timeout=0.1)
    b.send("y")
    b.close()
    assert drain(a) == (["y"], "EndOfChannel")
    # Ended and drained: the name starts a fresh channel, with a maxsize of its own.
    fresh = ManagerChannel[str](manager=server, name="jobs", maxsize=2)
    assert not fresh.closed
    with pytest.raises(ConfigError, match="maxsize=2"):
        ManagerChannel[str](manager=server, name="jobs")
    fresh.close()
    # Ended with items left: a late opener gets a closed handle and the items.
    early = ManagerChannel[str](manager=server, name="late")
    early.send("left")
    early.close()
    late = ManagerChannel[str](manager=server, name="late")
    assert late.closed
    assert drain(late) == (["left"], "EndOfChannel")


@pytest.mark.skipif(not socket.has_ipv6, reason="this Python has no IPv6")
def test_a_manager_on_ipv6_serves_and_stops_on_request() -> None:
    with ChannelManager(address="[::1]:0", authkey=KEY, shutdown_timeout=5) as manager:
        host, port = _address(manager)
        assert host == "::1"
        assert repr(manager) == f"<ChannelManager at [::1]:{port}, running>"
        with channels.open_channel[int](f"manager://[::1]:{port}/jobs", authkey=KEY) as ch:
            ch.send(1)
            assert ch.recv(timeout=WAIT) == 1
        started = time.monotonic()
    assert time.monotonic() - started < 4, "the server was killed, not asked to stop"


def test_a_wrong_key_a_missing_key_and_no_server_are_told_apart(
    server: ChannelManager, no_env_key: None
) -> None:
    with pytest.raises(channels.AuthkeyRejected, match="refused the authkey") as wrong:
        ManagerChannel[int](address=_address(server), authkey="not the key")
    assert not isinstance(wrong.value, channels.AuthkeyMissing)
    assert "not the key" not in str(wrong.value)
    with pytest.raises(channels.AuthkeyMissing, match="has none"):
        ManagerChannel[int](address=_address(server))  # only this process's own key to offer
    started = time.monotonic()
    with pytest.raises(channels.ServerUnreachable, match="cannot reach") as absent:
        ManagerChannel[int](address=("127.0.0.1", _free_port()), authkey=KEY)
    assert time.monotonic() - started < 5
    assert isinstance(absent.value, ChannelBroken)
    assert not isinstance(absent.value, ValueError)
    assert isinstance(absent.value.__cause__, ChannelBroken)


def test_bad_addresses_and_options_are_config_errors(server: ChannelManager) -> None:
    with pytest.raises(ConfigError, match="not both"):
        ManagerChannel[int](manager=server, address=("127.0.0.1", 1))
    with pytest.raises(ConfigError, match="manager address"):
        ManagerChannel[int](address="no-port-here")
    with pytest.raises(ConfigError, match="manager address"):
        channels.open_channel[int]("manager://127.0.0.1/jobs")  # no port
    with pytest.raises(ConfigError, match="non-empty"):
        ManagerChannel[int](manager=server, name="")
    with pytest.raises(ConfigError, match="not running"):
        ManagerChannel[int](manager=ChannelManager())


@pytest.mark.slow
def test_a_server_run_in_this_process_stops_cleanly() -> None:
    server = ChannelManager(address=("127.0.0.1", 0), authkey=KEY).get_server()
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    ch = ManagerChannel[int](address=cast(tuple[str, int], server.address), authkey=KEY)
    ch.send(1)
    assert ch.recv(timeout=WAIT) == 1
    outcome: list[str] = []

    def wait_for_more() -> None:
        try:
            ch.recv(timeout=WAIT)
        except channels.ChannelError as exc:
            outcome.append(type(exc).__name__)

    waiter = threading.Thread(target=wait_for_more)
    waiter.start()
    time.sleep(0.2)
    server.stop()
    thread.join(WAIT)
    waiter.join(WAIT)
    assert not thread.is_alive()
    assert outcome == ["ChannelBroken"]
    ch.close()  # with the server gone there is nothing to close, and no error


def test_a_default_socket_timeout_changes_nothing(server: ChannelManager) -> None:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(0.2)
    try:
        private = ManagerChannel[int]()  # its server process starts with the timeout set, too
        shared = ManagerChannel[int](address=_address(server), authkey=KEY)
        for ch in (private, shared):
            ch.send(1)
            assert ch.recv(timeout=WAIT) == 1
            with pytest.raises(ChannelTimeout):  # a wait longer than the default timeout
                ch.recv(timeout=0.5)
            ch.send(2)
            assert ch.recv(timeout=WAIT) == 2
            ch.close()
    finally:
        socket.setdefaulttimeout(previous)


@contextlib.contextmanager
def _server_thread(handshake_timeout: float = 10.0) -> Generator[tuple[str, int]]:
    """A ``ChannelServer`` serving in a thread of this process (so its log records are seen)."""
    server = ChannelManager(address=("127.0.0.1", 0), authkey=KEY).get_server()
    server.handshake_timeout = handshake_timeout
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield cast(tuple[str, int], server.address)
    finally:
        server.stop()
        thread.join(WAIT)


def _read_all(sock: socket.socket) -> bytes:
    """Everything the other side sends until it closes."""
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_a_peer_that_fails_the_handshake_gets_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="channels")
    with _server_thread(handshake_timeout=0.3) as address:
        with socket.create_connection(address, timeout=WAIT) as wrong:
            challenge = wrong.recv(4096)
            wrong.sendall(struct.pack("!i", 32) + b"not a digest of the key, at all!")
            refused = _read_all(wrong)
        started = time.monotonic()
        with socket.create_connection(address, timeout=WAIT) as silent:
            timed_out = _read_all(silent)  # says nothing until the server hangs up
        assert time.monotonic() - started < 5
        with socket.create_connection(address, timeout=WAIT) as rude:
            rude.recv(4096)
            rude.sendall(struct.pack("!i", 1 << 30))  # a length no handshake has
            malformed = _read_all(rude)
        ch = ManagerChannel[int](address=address, authkey=KEY)  # the server still serves
        ch.send(1)
        assert ch.recv(timeout=WAIT) == 1
        ch.close()
    assert b"CHALLENGE" in challenge
    assert b"FAILURE" in refused
    for answer in (refused, timed_out, malformed):
        assert b"Traceback" not in answer
        assert b".py" not in answer
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(refusals) == 3, refusals
    assert "does not know the authkey" in refusals[0]
    assert all(m.startswith("refused a connection from 127.0.0.1:") for m in refusals)
    assert not any("Traceback" in m or ".py" in m for m in refusals)


def test_credentials_are_never_echoed(no_env_key: None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "TOPSECRETKEY"
    texts: list[str] = []
    for spec, options in [
        (f"manager://h:notaport/x?authkey={secret}", {}),
        (f"manager://h:1/x?AuthKey={secret}&AuthKey={secret}", {}),
        (f"manager://127.0.0.1:1/x?authkey={secret}", {"authkey": "another"}),
        (f"redis://user:{secret}@h:notaport/x", {}),
        (f"redis://:{secret}@[::1/x", {}),
    ]:
        with pytest.raises(ConfigError) as info:
            channels.open_channel[int](spec, **cast("channels.ChannelOptions", options))
        texts.append(str(info.value))
        assert "***" in str(info.value)
    with _server_thread() as (host, port):
        url = f"manager://{host}:{port}/jobs?authkey={KEY}"
        ch = channels.open_channel[int](url)
        ch.send(1)
        assert ch.recv(timeout=WAIT) == 1
        texts += [repr(ch), repr(ch.sender), repr(ch.receiver), str(ch)]
        ch.close()
        for wrong in ("wrong-key-5309", KEY[:-1]):
            with pytest.raises(channels.AuthkeyRejected) as info:
                channels.open_channel[int](f"manager://{host}:{port}/jobs?authkey={wrong}")
            texts.append(str(info.value))
            assert wrong not in str(info.value)
    with ChannelManager(address=("127.0.0.1", 0), authkey=KEY) as manager:
        texts.append(repr(manager))
    texts += [record.getMessage() for record in caplog.records]
    assert any("refused a connection" in text for text in texts)  # the logs were seen
    for text in texts:
        assert secret not in text
        assert KEY not in text


# -- processes ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_children_use_the_channel_under_every_start_method(method: str) -> None:
    ch = ManagerChannel[object](context=method)
    results: channels.Channel[Any] = channels.open_channel[object]("queue", context=method)
    child = start(method, manager_funcs.drain_and_report, ch.receiver, results.clone())
    results.close()
    for i in range(5):
        ch.send(i)
    ch.close()
    items, stop, _ = results.recv(timeout=WAIT)
    assert (items, stop) == (list(range(5)), "EndOfChannel")
    assert join(child) == [0]


def test_a_spawned_child_authenticates_with_the_key_in_the_environment(
    server: ChannelManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_AUTHKEY, KEY)
    ch = ManagerChannel[object](address=_address(server))  # the key comes from the environment
    results: channels.Channel[Any] = channels.open_channel[object]("queue", context="spawn")
    child = start("spawn", manager_funcs.drain_and_report, ch.receiver, results.clone())
    results.close()
    ch.send("a")
    ch.close()
    items, stop, _ = results.recv(timeout=WAIT)
    assert (items, stop) == (["a"], "EndOfChannel")
    assert join(child) == [0]


def test_pickled_at_any_time_and_never_with_the_key(server: ChannelManager) -> None:
    ch = ManagerChannel[object](address=_address(server), authkey=KEY, name="pickled")
    data = pickle.dumps(ch)
    assert KEY.encode() not in data
    assert bytes(multiprocessing.current_process().authkey) not in data
    copy = pickle.loads(data)
    copy.send("through a copy")
    assert ch.recv(timeout=WAIT) == "through a copy"
    ch.close()
    # A private manager's channel, sent as an item to a child that is already running.
    local = ManagerChannel[object]()
    inbox = channels.open_channel[object]("queue", context="spawn")
    child = start("spawn", manager_funcs.use_a_channel_that_arrives, inbox.receiver)
    handle = local.clone()
    assert bytes(multiprocessing.current_process().authkey) not in pickle.dumps(handle)
    inbox.send(handle)
    inbox.close()
    local.close()
    greeting = local.recv(timeout=WAIT)
    assert isinstance(greeting, str)
    assert greeting.startswith("hello from")
    assert join(child) == [0]
    with pytest.raises(channels.EndOfChannel):
        local.recv(timeout=WAIT)


@pytest.mark.slow
def test_a_killed_server_breaks_blocked_calls_at_once() -> None:
    results: channels.Channel[Any] = channels.open_channel[object]("queue")
    with ChannelManager(authkey=KEY) as manager:
        assert manager.process is not None
        empty = ManagerChannel[object](manager=manager, name="empty")
        full = ManagerChannel[object](manager=manager, name="full", maxsize=1)
        full.send("x")
        rx = start("fork", manager_funcs.recv_and_report, empty.receiver, results.clone())
        tx = start("fork", manager_funcs.send_and_report, full.sender, results.clone())
        results.close()
        assert [results.recv(timeout=WAIT) for _ in range(2)] == ["ready", "ready"]
        time.sleep(0.3)  # both are blocked in the server now
        killed = time.time()
        os.kill(cast(int, manager.process.pid), signal.SIGKILL)
        reports = [results.recv(timeout=WAIT) for _ in range(2)]
        assert sorted(r[0] for r in reports) == ["ChannelBroken", "ChannelBroken"]
        assert max(r[-1] for r in reports) - killed < 2
        started = time.monotonic()
        with pytest.raises(ChannelBroken, match="manager server"):
            empty.send("more")
        with pytest.raises(ChannelBroken):
            full.recv(timeout=WAIT)
        assert time.monotonic() - started < 2
        empty.close()  # closing needs no server
        assert empty.closed
    assert join(rx, tx) == [0, 0]


def test_a_receiver_killed_while_waiting_takes_no_item_with_it() -> None:
    ch = ManagerChannel[object]()
    results: channels.Channel[Any] = channels.open_channel[object]("queue")
    victim = start("fork", manager_funcs.recv_and_report, ch.receiver, results.clone())
    results.close()
    assert results.recv(timeout=WAIT) == "ready"
    time.sleep(0.3)  # the victim waits in the server
    victim.kill()
    assert join(victim) == [-signal.SIGKILL]
    ch.send("next")
    assert ch.recv(timeout=WAIT) == "next"
    ch.close()


def test_an_interrupted_call_leaves_the_channel_in_step() -> None:
    ch = ManagerChannel[object]()
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        ch.recv(timeout=WAIT)
    timer.join()
    ch.send("after")  # the interrupted call's server thread must not take this
    assert ch.recv(timeout=WAIT) == "after"
    ch.close()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_senders_that_die_without_closing_break_the_channel_after_their_items(
    method: str,
) -> None:
    ch = ManagerChannel[object](context=method)
    results: channels.Channel[Any] = channels.open_channel[object]("queue", context=method)
    rx = start(method, manager_funcs.drain_and_report, ch.receiver, results.clone())
    results.close()
    sent = [[(n, i) for i in range(3)] for n in range(2)]
    ctx = multiprocessing.get_context(method)
    done, go = ctx.Semaphore(0), ctx.Event()
    senders = [
        start(method, manager_funcs.send_and_vanish, ch.clone(), items, done, go) for items in sent
    ]
    ch.close()
    for _ in senders:  # both have sent before either dies: a mere holder keeps nothing alive
        assert done.acquire(timeout=WAIT)
    go.set()
    assert join(*senders) == [3, 3]
    died = time.time()
    items, stop, when = results.recv(timeout=WAIT)
    assert sorted(items) == sorted(sent[0] + sent[1])
    assert stop == "ChannelBroken"
    assert when - died < 2
    assert join(rx) == [0]
    with pytest.raises(ChannelBroken):
        ch.recv(timeout=WAIT)


def test_every_receiver_gone_breaks_a_blocked_sender() -> None:
    ch = ManagerChannel[object](maxsize=2)
    consumer = start("fork", children.recv_then_die, ch.receiver, 1)
    ch.send("first")
    assert join(consumer) == [0]
    ch.send("fills")
    ch.send("the channel")
    started = time.monotonic()
    with pytest.raises(ChannelBroken, match="every process that received"):
        ch.send("one too many", timeout=WAIT)
    assert time.monotonic() - started < 2
    ch.close()


# -- channels serve ----------------------------------------------------------------------


@pytest.mark.slow
def test_serve_hosts_named_channels_until_sigterm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_AUTHKEY, KEY)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from channels._cli.serve import serve; serve()"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], WAIT)
        assert ready, "serve() printed no address"
        line = proc.stdout.readline()
        assert line.startswith("channels: serving on 127.0.0.1:"), line
        spec = f"manager://{line.split()[-1]}/jobs"
        holder = channels.open_channel[int](spec)  # keeps the channel open until both joined
        results: channels.Channel[Any] = channels.open_channel[object]("queue", context="spawn")
        consumer = start("spawn", manager_funcs.consume_by_spec, spec, results.clone())
        producer = start("spawn", manager_funcs.produce_by_spec, spec, 50)
        results.close()
        assert results.recv(timeout=WAIT) == "opened"
        assert join(producer) == [0]
        holder.close()
        items, stop, _ = results.recv(timeout=WAIT)
        assert (items, stop) == (list(range(50)), "EndOfChannel")
        assert join(consumer) == [0]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err
    assert KEY not in out + err


def test_serve_checks_its_key_and_address(
    no_env_key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for host in ("127.0.0.1", "::1", "0.0.0.0"):  # loopback too: clients could not connect
        with pytest.raises(ConfigError, match="without an authkey"):
            check_server_key((host, 0), None)
    with pytest.raises(ConfigError, match="without an authkey"):
        serve(("", 8765))
    short = "s3cret" * 3
    with pytest.raises(ConfigError, match=f"{len(short)} bytes") as info:
        serve(("0.0.0.0", 0), authkey=short)
    assert short not in str(info.value)
    monkeypatch.setenv(ENV_AUTHKEY, KEY)
    assert check_server_key(("10.1.2.3", 0), None) == KEY.encode()
    assert len(KEY) >= MIN_AUTHKEY_BYTES
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ConfigError, match="cannot listen"):
            serve(taken.getsockname())
