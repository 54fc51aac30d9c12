"""A network partition between hosts: the server, producers and consumers each in a namespace.

Three network namespaces stand for three machines: the server's, the
producers' and the consumers'. Each client namespace reaches the server over a
veth pair of its own, with private addresses that exist only inside these
namespaces. The test takes links down and brings them up again while items
flow (or drops every packet the server sends on one, with ``tc netem``: its
replies are lost while requests still arrive), then checks the history:
nothing lost, duplicated or reordered, and every receiver sees the end.

Skipped where network namespaces cannot be made (not root, no iproute2, no
CAP_SYS_ADMIN in a container).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from history import History, Party, check
from redis_server import REDIS_SERVER, SKIP_REASON, RedisServer
from support import TESTS

pytestmark = [
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
    pytest.mark.extended,
]

#: Longer than any cut below, so a partitioned process never looks dead.
LEASE = 6.0
LIMIT = 20.0


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=LIMIT)


class Hosts:
    """Three namespaces, ``server``, ``producers`` and ``consumers``, joined by two veth pairs."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}{time.monotonic_ns() % 1000}"
        self.server, self.producers, self.consumers = (f"ch{tag}{r}" for r in "spc")
        #: The server's end of each link, as named inside the server's namespace.
        self.links = {"producers": f"vp{tag}", "consumers": f"vc{tag}"}
        #: Where each client namespace reaches the server.
        self.address = {"producers": "10.213.1.1", "consumers": "10.213.2.1"}
        self.made: list[str] = []

    def create(self) -> None:
        for ns in (self.server, self.producers, self.consumers):
            ip("netns", "add", ns)
            self.made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        for side, ns, net in (("producers", self.producers, 1), ("consumers", self.consumers, 2)):
            near, far = self.links[side], self.links[side] + "x"
            ip("link", "add", near, "netns", self.server, "type", "veth", "peer", "name", far,
               "netns", ns)  # fmt: skip
            ip("-n", self.server, "addr", "add", f"10.213.{net}.1/30", "dev", near)
            ip("-n", ns, "addr", "add", f"10.213.{net}.2/30", "dev", far)
            ip("-n", self.server, "link", "set", near, "up")
            ip("-n", ns, "link", "set", far, "up")

    def cut(self, side: str, how: str) -> None:
        """Take the link to ``side`` down, or (``"netem"``) drop every packet the server sends
        on it: its replies are lost while what it is sent still arrives."""
        link = self.links[side]
        if how == "netem":
            subprocess.run(
                ["ip", "netns", "exec", self.server, "tc", "qdisc", "add", "dev", link, "root",
                 "netem", "loss", "100%"],
                check=True, capture_output=True, timeout=LIMIT,
            )  # fmt: skip
        else:
            ip("-n", self.server, "link", "set", link, "down")

    def heal(self, side: str, how: str) -> None:
        link = self.links[side]
        if how == "netem":
            subprocess.run(
                ["ip", "netns", "exec", self.server, "tc", "qdisc", "del", "dev", link, "root"],
                check=True, capture_output=True, timeout=LIMIT,
            )  # fmt: skip
        else:
            ip("-n", self.server, "link", "set", link, "up")

    def remove(self) -> None:
        for ns in reversed(self.made):  # its veth ends go with it
            subprocess.run(
                ["ip", "netns", "del", ns], capture_output=True, timeout=LIMIT, check=False
            )
        self.made.clear()


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (the ip command) is not installed")
    made = Hosts()
    try:
        made.create()
    except (subprocess.CalledProcessError, OSError) as exc:
        made.remove()
        detail = getattr(exc, "stderr", "") or str(exc)
        pytest.skip(f"network namespaces cannot be made here: {detail.strip()}")
    try:
        yield made
    finally:
        made.remove()


def party(hosts: Hosts, side: str, spec: dict[str, Any]) -> subprocess.Popen[bytes]:
    """Start one party (see ``fault_parties.main``) in the namespace of ``side``."""
    ns = hosts.producers if side == "producers" else hosts.consumers
    command = ["ip", "netns", "exec", ns, sys.executable, str(TESTS / "fault_parties.py")]
    return subprocess.Popen([*command, json.dumps(spec)])


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
@pytest.mark.timeout(150)  # every wait below is bounded; this bounds their sum
@pytest.mark.parametrize("how", ["link down", "netem"])
def test_a_partition_that_heals_loses_duplicates_and_reorders_nothing(
    hosts: Hosts, tmp_path: Path, how: str
) -> None:
    if how == "netem":
        try:
            hosts.cut("producers", how)
            hosts.heal("producers", how)
        except (subprocess.CalledProcessError, OSError) as exc:
            detail = getattr(exc, "stderr", b"") or str(exc).encode()
            pytest.skip(f"tc netem is not available here: {detail.decode().strip()}")
    server = RedisServer(
        netns=hosts.server,
        bind=" ".join(hosts.address.values()),
        extra=("--protected-mode", "no"),  # its addresses exist only in these namespaces
    )
    processes: list[subprocess.Popen[bytes]] = []
    files = [tmp_path / f"party-{i}.json" for i in range(4)]
    try:
        server.start()
        name = f"partition-{time.monotonic_ns()}"
        options = {"lease": LEASE, "reconnect": 30.0}
        url = {side: f"redis://{a}:{server.port}/{name}" for side, a in hosts.address.items()}
        for i in range(2):
            spec = {"role": "consume", "url": url["consumers"], "who": f"c{i}", "hang": LIMIT,
                    "options": options, "out": str(files[2 + i])}  # fmt: skip
            processes.append(party(hosts, "consumers", spec))
        go = tmp_path / "go"
        for i in range(2):
            plan = {"who": f"p{i}", "count": 80, "batch": 1 + 2 * i, "timeout": LIMIT,
                    "pace": 0.05, "out": str(files[i])}  # fmt: skip
            spec = {"role": "produce", "url": url["producers"], "options": options, "plan": plan,
                    "ready": str(tmp_path / f"ready-{i}"), "go": str(go)}  # fmt: skip
            processes.append(party(hosts, "producers", spec))
        deadline = time.monotonic() + LIMIT
        while not all((tmp_path / f"ready-{i}").exists() for i in range(2)):
            assert time.monotonic() < deadline, "the producers did not open their handles"
            assert all(p.poll() is None for p in processes), "a party died at start"
            time.sleep(0.05)
        go.touch()
        for side, seconds in (("producers", 2.0), ("consumers", 2.0), ("producers", 1.0)):
            time.sleep(0.8)
            hosts.cut(side, how)
            time.sleep(seconds)
            hosts.heal(side, how)
        for p in processes:
            p.wait(timeout=2 * LIMIT)
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait(LIMIT)
        server.remove()
    parties = [Party.load(f) for f in files]
    history = History(parties)
    assert check(history) == []
    assert len(history.sends) == 160  # every producer went to the end
