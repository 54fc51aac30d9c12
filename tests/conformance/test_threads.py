"""Threads use every handle as processes do: many producer and consumer threads in one
process, threads and processes mixed, bounded senders in several threads, a receiver
closed from another thread. Exactly once, FIFO per sender, and only ``ChannelError``s."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial

import pytest

import channels
from channels import ChannelClosed, ChannelError, ChannelTimeout, WouldBlock

from support import BOUNDED_BACKENDS, WAIT, join, open_for, start

Item = tuple[int, int]  # (producer, sequence number)


class Outcome:
    """What the threads of one test received, per consumer, and what they raised."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: dict[str, list[Item]] = {}
        self.errors: list[BaseException] = []

    def run(self, name: str, target: Callable[[], object]) -> threading.Thread:
        def guarded() -> None:
            try:
                target()
            except BaseException as exc:
                with self.lock:
                    self.errors.append(exc)

        thread = threading.Thread(target=guarded, name=name)
        thread.start()
        return thread

    def consume(self, name: str, receiver: channels.Receiver[Item]) -> threading.Thread:
        got = self.seen.setdefault(name, [])
        return self.run(name, lambda: got.extend(receiver))

    def check(self, producers: int, count: int) -> None:
        """Every item exactly once, each consumer seeing each producer's items in order."""
        assert not self.errors, self.errors
        everything = [item for got in self.seen.values() for item in got]
        assert sorted(everything) == [(p, i) for p in range(producers) for i in range(count)]
        for got in self.seen.values():
            for p in range(producers):
                mine = [i for q, i in got if q == p]
                assert mine == sorted(mine), f"producer {p}'s items out of order"


def _produce(sender: channels.Sender[Item], producer: int, count: int) -> None:
    with sender:
        for i in range(count):
            sender.send((producer, i), timeout=WAIT)


def _join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(WAIT * 3)
        assert not thread.is_alive(), f"{thread.name} did not finish"


def test_many_producer_and_consumer_threads_share_one_receiver(backend: str) -> None:
    producers, count = 20, 200
    ch = open_for(backend)
    outcome = Outcome()
    senders = [ch.clone() for _ in range(producers)]
    ch.close()
    threads = [outcome.consume(f"consumer-{c}", ch.receiver) for c in range(3)]
    for p, sender in enumerate(senders):
        threads.append(outcome.run(f"producer-{p}", partial(_produce, sender, p, count)))
    _join_all(threads)
    outcome.check(producers, count)


def _forward(receiver: channels.Receiver[Item], results: channels.Sender[Item]) -> None:
    with results:
        for item in receiver:
            results.send(item, timeout=WAIT)


@pytest.mark.slow
def test_threads_and_processes_mixed(backend: str, method: str) -> None:
    count = 100
    ch = open_for(backend, method)
    results = open_for(backend, method)
    outcome = Outcome()
    # Producers 0-1 are processes, 2-5 threads; one consumer is a process, two are threads.
    processes = [start(method, _produce, ch.clone(), p, count) for p in range(2)]
    processes.append(start(method, _forward, ch.receiver, results.clone()))
    results.close()
    threads = [outcome.consume(f"consumer-{c}", ch.receiver) for c in range(2)]
    senders = [ch.clone() for _ in range(2, 6)]
    ch.close()
    for p, sender in enumerate(senders, 2):
        threads.append(outcome.run(f"producer-{p}", partial(_produce, sender, p, count)))
    forwarded = outcome.consume("the consumer process", results.receiver)
    _join_all([*threads, forwarded])
    assert join(*processes) == [0] * len(processes)
    outcome.check(6, count)


@pytest.mark.parametrize("backend", BOUNDED_BACKENDS)
def test_bounded_senders_in_several_threads(backend: str) -> None:
    producers, count = 4, 100
    ch = open_for(backend, maxsize=2)
    outcome = Outcome()
    senders = [ch.clone() for _ in range(producers)]
    ch.close()
    threads = [
        outcome.run(f"producer-{p}", partial(_produce, sender, p, count))
        for p, sender in enumerate(senders)
    ]
    time.sleep(0.1)  # every sender finds the channel full
    threads.append(outcome.consume("consumer", ch.receiver))
    _join_all(threads)
    outcome.check(producers, count)


def _patient_send(sender: channels.Sender[Item], producer: int, count: int) -> None:
    """Send with tiny timeouts and now and then without waiting, retrying until each goes."""
    with sender:
        for i in range(count):
            while True:
                try:
                    if i % 3:
                        sender.send((producer, i), timeout=0.002)
                    else:
                        sender.send_nowait((producer, i))
                    break
                except (ChannelTimeout, WouldBlock):
                    pass


def _patient_receive(receiver: channels.Receiver[Item], got: list[Item]) -> None:
    while True:
        try:
            if len(got) % 2:
                got.append(receiver.recv(timeout=0.002))
            else:
                got.append(receiver.recv_nowait())
        except (ChannelTimeout, WouldBlock):
            pass
        except channels.EndOfChannel:
            return


def test_threads_with_tiny_timeouts_lose_and_duplicate_nothing(backend: str) -> None:
    producers, count = 4, 100
    ch = open_for(backend, maxsize=4) if backend in BOUNDED_BACKENDS else open_for(backend)
    outcome = Outcome()
    senders = [ch.clone() for _ in range(producers)]
    ch.close()
    threads: list[threading.Thread] = []
    for c in range(3):
        got = outcome.seen.setdefault(f"consumer-{c}", [])
        threads.append(outcome.run(f"consumer-{c}", partial(_patient_receive, ch, got)))
    for p, sender in enumerate(senders):
        threads.append(outcome.run(f"producer-{p}", partial(_patient_send, sender, p, count)))
    _join_all(threads)
    outcome.check(producers, count)


def test_a_receiver_closed_from_another_thread_stops_every_waiting_thread(backend: str) -> None:
    ch = open_for(backend)
    stopped: list[BaseException] = []
    lock = threading.Lock()

    def wait() -> None:
        try:
            ch.receiver.recv(timeout=10)
        except BaseException as exc:
            with lock:
                stopped.append(exc)

    threads = [threading.Thread(target=wait) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    ch.receiver.close()
    _join_all(threads)
    assert time.monotonic() - started < 2
    assert [type(exc) for exc in stopped] == [ChannelClosed] * 3
    assert all(isinstance(exc, ChannelError) for exc in stopped)
    ch.close()
