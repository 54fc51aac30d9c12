"""Delivery properties with real processes (threads for the thread backend): FIFO per sender,
exactly once, the end for all."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import children
from support import BACKENDS, BOUNDED_BACKENDS, drain, join, open_for, start, worker_method

PROCESS_SETTINGS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Payload sizes straddle the pipe's atomic write size, so items take both paths.
payload_sizes = st.sampled_from([0, 10, 3000, 5000, 70_000])


@PROCESS_SETTINGS
@given(
    backend=st.sampled_from(BACKENDS),
    plans=st.lists(st.lists(payload_sizes, max_size=40), min_size=1, max_size=3),
    consumers=st.integers(1, 3),
    maxsize=st.sampled_from([0, 0, 1, 7]),
)
def test_every_item_exactly_once_and_fifo_per_sender(
    backend: str, plans: list[list[int]], consumers: int, maxsize: int
) -> None:
    method = worker_method(backend)
    options = {"maxsize": maxsize} if maxsize and backend in BOUNDED_BACKENDS else {}
    ch = open_for(backend, method, **options)
    results = open_for("queue", method)
    sent = {
        tag: [(tag, i, b"x" * size) for i, size in enumerate(plan)]
        for tag, plan in enumerate(plans)
    }
    procs = [start(method, children.produce, ch.clone(), items) for items in sent.values()] + [
        start(method, children.consume, ch.receiver, results.clone()) for _ in range(consumers)
    ]
    ch.close()
    results.close()
    reports, stop = drain(results)
    assert stop == "EndOfChannel"
    assert join(*procs) == [0] * len(procs)
    assert [outcome for outcome, _ in reports] == ["end"] * consumers
    received = [item for _, items in reports for item in items]
    expected = [item for items in sent.values() for item in items]
    assert sorted(received) == sorted(expected)
    for _, items in reports:
        for tag in sent:
            order = [i for t, i, _ in items if t == tag]
            assert order == sorted(order)


@PROCESS_SETTINGS
@given(
    backend=st.sampled_from(BACKENDS),
    receivers=st.integers(1, 4),
    clones=st.integers(0, 3),
    closed_in_children=st.integers(0, 3),
    items=st.integers(0, 20),
)
def test_the_end_reaches_every_receiver(
    backend: str, receivers: int, clones: int, closed_in_children: int, items: int
) -> None:
    method = worker_method(backend)
    ch = open_for(backend, method)
    results = open_for("queue", method)
    consumers = [
        start(method, children.consume, ch.receiver, results.clone()) for _ in range(receivers)
    ]
    handles = [ch.clone() for _ in range(clones)]
    for i in range(items):
        ch.send(i)
    closers = [start(method, children.close_it, h) for h in handles[:closed_in_children]]
    for h in handles[closed_in_children:]:
        h.close()
    ch.close()
    results.close()
    reports, stop = drain(results)
    assert join(*consumers, *closers) == [0] * (len(consumers) + len(closers))
    assert stop == "EndOfChannel"
    assert sorted(outcome for outcome, _ in reports) == ["end"] * receivers
    assert sorted(i for _, got in reports for i in got) == list(range(items))
