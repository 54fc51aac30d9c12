"""Faults against a real redis-server: a server crash and restart, killed connections, a
killed receiver, and TLS with a self-signed certificate."""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

import channels
from channels import ChannelError

import children
from redis_server import (
    REDIS_SERVER,
    SKIP_REASON,
    RedisServer,
    core_of,
    make_certificates,
    running,
    shared,
)
from support import WAIT, drain, join, start

pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")


def unique(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns()}"


def test_a_server_killed_and_restarted_with_aof_loses_nothing_sent() -> None:
    server = RedisServer(appendonly=True).start()
    try:
        url = server.url(unique("aof"))
        ch = channels.open_channel[int](url, reconnect=WAIT)
        returned: list[int] = []
        failed: list[BaseException] = []

        def produce() -> None:
            try:
                for i in range(600):
                    ch.send(i, timeout=WAIT)
                    returned.append(i)
            except BaseException as exc:  # reported by the assertion below
                failed.append(exc)

        thread = threading.Thread(target=produce)
        thread.start()
        deadline = time.monotonic() + WAIT
        while len(returned) < 200:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        server.stop(signal.SIGKILL)  # in the middle of the stream
        time.sleep(0.3)
        server.start()
        thread.join(WAIT)
        assert not failed
        assert returned == list(range(600))
        ch.close()
        items, stop = drain(ch)
        assert stop == "EndOfChannel"
        assert items == list(range(600))  # nothing lost, nothing twice, in order
    finally:
        server.remove()


def test_connections_killed_by_the_server_lose_and_duplicate_nothing() -> None:
    server = shared()
    url = server.url(unique("kill"))
    ch = channels.open_channel[int](url)
    rx = channels.open_receiver[int](url)
    count = 2000
    got: list[int] = []
    outcome: list[str] = []

    def produce() -> None:
        with ch.sender:
            for i in range(count):
                ch.send(i, timeout=WAIT)

    def consume() -> None:
        items, stop = drain(rx)
        got.extend(items)
        outcome.append(stop)

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    kills = 0
    while (threads[0].is_alive() or threads[1].is_alive()) and kills < 200:
        kills += server.kill_clients()
        time.sleep(0.02)
    for t in threads:
        t.join(WAIT)
    assert kills > 0
    assert outcome == ["EndOfChannel"]
    assert sorted(got) == list(range(count))  # none lost, none twice
    assert got == list(range(count))  # and one sender's items in order


def test_a_receiver_killed_holding_items_of_a_joinable_channel(method: str) -> None:
    server = shared()
    url = server.url(unique("joinkill"))
    ch = channels.open_channel[int](url, joinable=True, lease=1.0)
    for i in range(6):
        ch.send(i)
    victim = channels.open_receiver[int](url, lease=1.0)
    child = start(method, children.recv_then_die, victim, 4)
    assert join(child) == [0]
    ch.close()
    items: list[int] = []
    for _ in range(6):  # the victim's four come back once its lease lapses
        items.append(ch.recv(timeout=WAIT))
        ch.task_done()
    assert sorted(items) == list(range(6))
    ch.sender.join(WAIT)
    assert drain(ch) == ([], "EndOfChannel")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_rediss_speaks_tls_with_a_self_signed_certificate(tmp_path: Path) -> None:
    assert REDIS_SERVER is not None
    probe = subprocess.run(
        [REDIS_SERVER, "--tls-port", "0", "--port", "0", "--test-memory", "0"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    if "tls-port" in probe.stdout + probe.stderr and "Bad directive" in probe.stdout + probe.stderr:
        pytest.skip("this redis-server was built without TLS")
    certs = make_certificates(tmp_path)
    server = RedisServer(tls=certs).start()
    try:
        ca = certs / "ca.crt"
        url = f"rediss://localhost:{server.port}/{unique('tls')}?tls_ca={ca}"
        ch = channels.open_channel[str](url)
        assert core_of(ch).ref.server.tls
        tx = channels.open_sender[str](url)
        tx.send("over tls")
        tx.close()
        ch.close()
        assert drain(ch) == (["over tls"], "EndOfChannel")
        with pytest.raises(ChannelError):  # no CA given: the self-signed certificate is refused
            channels.open_channel[str](f"rediss://localhost:{server.port}/x", reconnect=0.5)
    finally:
        server.remove()


def test_the_redis_server_is_stopped_by_its_pid() -> None:
    server = RedisServer().start()
    pid = server.pid
    assert running(pid)
    server.remove()
    assert not running(pid)  # gone, or a zombie its new parent has not reaped yet
    assert not server.folder.exists()
