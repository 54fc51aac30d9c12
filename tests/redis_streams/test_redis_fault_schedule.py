"""Randomized fault schedules: producers and consumers in processes, a scheduler injecting faults.

Producers and consumers reach a private redis-server through the fault proxy;
meanwhile a scheduler, driven by a seeded random generator, loses replies, cuts
connections, delays and black-holes traffic, makes the server unreachable, stalls
it (SIGSTOP/SIGCONT) and crashes it (SIGKILL, then a restart). Every process
records its history; ``history.check`` then lists every promise broken.

The seed is printed; set ``CHANNELS_FAULT_SEED`` to replay a schedule, and
``CHANNELS_FAULT_KINDS`` (say ``cut,drop``: names of ``Scheduler`` methods) to
inject only those faults.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path

import pytest

import channels

from fault_parties import Plan, consume, produce
from fault_proxy import FaultProxy
from history import History, Party, check
from redis_server import SKIP_REASON, RedisServer
from support import start

#: The fixtures (see conftest) that start private servers and proxies, gone at teardown.
MakeServer = Callable[..., RedisServer]
MakeProxy = Callable[[RedisServer], FaultProxy]

pytestmark = [
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
    pytest.mark.slow,
    pytest.mark.extended,
    pytest.mark.timeout(180),  # faults for at most 45 s, then every process joined (bounded)
]

#: A process's hold on its handles: longer than any outage or black hole below plus a
#: renewal's cadence (a third of it), so no fault makes a live process look dead.
LEASE = 2.0
RECONNECT = 20.0
#: A receiver with nothing for this long, its channel not ended, hangs.
HANG = 12.0
#: In a command, the pickled name of a producer (``p0``...): the command puts its items.
PUT = b"\x8c\x02p"


def seed() -> int:
    chosen = int(os.environ.get("CHANNELS_FAULT_SEED") or random.randrange(1 << 32))
    print(f"fault schedule seed: {chosen} (replay: CHANNELS_FAULT_SEED={chosen})")
    return chosen


class Scheduler:
    """Injects one random fault after another and logs each (the log explains a failure)."""

    def __init__(self, rng: random.Random, server: RedisServer, proxy: FaultProxy) -> None:
        self.rng, self.server, self.proxy = rng, server, proxy
        self.log: list[str] = []
        self._began = time.monotonic()

    def note(self, what: str) -> None:
        self.log.append(f"{time.monotonic() - self._began:6.2f} s  {what}")

    def drop(self) -> None:
        command = self.rng.choice([b"EVALSHA", b"XREADGROUP", b"XREAD"])
        self.note(f"lose the next reply to {command.decode()}, cut its connection")
        self.proxy.drop_reply(lambda words: words[0].upper() == command)

    def lost_put_then_outage(self) -> None:
        seconds = self.rng.uniform(1.0, 1.4)  # longer than a send's timeout
        self.note(f"lose a put's reply, then the server unreachable for {seconds:.2f} s")
        rule = self.proxy.drop_reply(PUT, after="reject")
        time.sleep(seconds)
        self.proxy.heal()
        if not rule.done.is_set():
            self.note("  (no reply was lost)")

    def outage(self) -> None:
        seconds = self.rng.uniform(0.2, 1.0)
        self.note(f"server unreachable (connections reset) for {seconds:.2f} s")
        self.proxy.reject()
        time.sleep(seconds)
        self.proxy.heal()

    def cut(self) -> None:
        self.note("cut every connection")
        self.proxy.cut()

    def delay(self) -> None:
        by, seconds = self.rng.uniform(0.05, 0.4), self.rng.uniform(0.3, 1.5)
        self.note(f"delay replies by {by:.2f} s for {seconds:.2f} s")
        self.proxy.delay(by)
        time.sleep(seconds)
        self.proxy.heal()

    def blackhole(self) -> None:
        seconds = self.rng.uniform(0.2, 1.0)
        self.note(f"black hole for {seconds:.2f} s")
        self.proxy.blackhole()
        time.sleep(seconds)
        self.proxy.heal()

    def stall(self) -> None:
        seconds = self.rng.uniform(0.2, 1.5 * LEASE)
        self.note(f"SIGSTOP the server for {seconds:.2f} s")
        self.server.pause()
        time.sleep(seconds)
        self.server.resume()

    def crash(self) -> None:
        down = self.rng.uniform(0.05, 0.5)
        self.note(f"SIGKILL the server, restart it {down:.2f} s later")
        self.server.crash()
        time.sleep(down)
        self.server.start()

    def run(self, faults: list[Callable[[], None]], until: Callable[[], bool], most: float) -> None:
        """Inject faults, a random pause apart, until ``until()`` or ``most`` seconds passed."""
        deadline = time.monotonic() + most
        while not until() and time.monotonic() < deadline:
            time.sleep(self.rng.uniform(0.1, 0.6))
            self.rng.choice(faults)()
        self.proxy.heal()
        self.note("healed")


def _run(
    tmp_path: Path,
    scheduler: Scheduler,
    schedule: Callable[[Scheduler, Callable[[], bool]], None],
    *,
    hang: float = HANG,
) -> History:
    """Three producers (two sending one by one, one in batches) and two consumers, under faults."""
    name = f"schedule-{time.monotonic_ns()}"
    options = {"lease": LEASE, "reconnect": RECONNECT}
    proxy = scheduler.proxy
    ch = channels.open_channel[tuple[str, int]](proxy.url(name), **options)  # type: ignore[arg-type]
    files = [tmp_path / f"party-{i}.json" for i in range(5)]
    processes: list[BaseProcess] = []
    for i, batch in enumerate((1, 1, 3)):
        tx = ch.sender.clone()
        plan = Plan(f"p{i}", count=120, batch=batch, timeout=1.0, pace=0.1, out=str(files[i]))
        processes.append(start("fork", produce, tx, plan))  # it closes the handle when done
    for i in range(2):
        args = (proxy.url(name), f"c{i}", hang, options, str(files[3 + i]))
        processes.append(start("fork", consume, *args))
    ch.close()
    producers = processes[:3]
    try:
        schedule(scheduler, lambda: not any(p.is_alive() for p in producers))
        deadline = time.monotonic() + 2 * hang + 20
        for p in processes:
            p.join(max(0.1, deadline - time.monotonic()))
    finally:
        for p in processes:
            if p.is_alive():
                scheduler.note(f"{p.name} still running at the end: killed")
                p.kill()
                p.join(5)
    parties = [Party.load(f) if f.exists() else _silent(f) for f in files]
    return History(parties)


def _silent(path: Path) -> Party:
    """A process that left no record (it was killed): as a receiver that hung."""
    party = Party()
    party.errors.append(f"{path.stem} left no record: it never finished")
    return party


def _verdict(history: History, scheduler: Scheduler, chosen: int) -> None:
    problems = check(history)
    items = sum(len(s.items) for s in history.streams)
    scheduler.note(f"{len(history.sends)} items sent, {items} received")
    assert not problems, (
        f"seed {chosen}: " + "; ".join(problems[:20]) + "\nfaults:\n" + "\n".join(scheduler.log)
    )


def test_a_random_fault_schedule_loses_duplicates_and_reorders_nothing(
    tmp_path: Path, make_server: MakeServer, make_proxy: MakeProxy
) -> None:
    chosen = seed()
    rng = random.Random(chosen)
    server = make_server(appendonly=True, appendfsync="always")
    proxy = make_proxy(server)

    def schedule(s: Scheduler, done: Callable[[], bool]) -> None:
        faults = [s.drop, s.drop, s.cut, s.delay, s.blackhole, s.outage, s.lost_put_then_outage]
        faults += [s.stall, s.crash]
        only = os.environ.get("CHANNELS_FAULT_KINDS")  # e.g. "cut,drop": to corner one bug
        if only:
            faults = [getattr(s, kind.strip()) for kind in only.split(",")]
            s.note(f"faults limited to {only}")
        s.run(faults, done, most=45)

    scheduler = Scheduler(rng, server, proxy)
    history = _run(tmp_path, scheduler, schedule)
    _verdict(history, scheduler, chosen)


def test_a_random_schedule_with_data_loss_is_loud(
    tmp_path: Path, make_server: MakeServer, make_proxy: MakeProxy
) -> None:
    chosen = seed()
    rng = random.Random(chosen)
    server = make_server()  # no persistence: a restart loses everything
    proxy = make_proxy(server)

    def schedule(s: Scheduler, done: Callable[[], bool]) -> None:
        s.run([s.drop, s.cut, s.delay, s.outage], lambda: False, most=rng.uniform(2, 5))
        if rng.random() < 0.5:
            s.note("FLUSHALL")
            server.flushall()
        else:
            s.note("SIGKILL the server and restart it without its data")
            server.crash()
            server.start()
        s.run([s.drop, s.cut, s.delay], done, most=3)

    scheduler = Scheduler(rng, server, proxy)
    history = _run(tmp_path, scheduler, schedule, hang=6.0)
    history.lost_data = True
    _verdict(history, scheduler, chosen)
