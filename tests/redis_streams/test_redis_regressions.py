"""Regressions: each fault that once lost, reordered, duplicated or hung items on redis.

Each test injects one fault with a real redis-server, through the fault proxy
where the fault is in the network, and checks the promise the fault broke.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

import channels
from channels import ChannelBroken, ChannelError, ChannelTimeout
from channels._backends.redis._core import RedisCore

from fault_proxy import FaultProxy
from history import History, Party, Stream, check
from redis_server import SKIP_REASON, RedisServer, shared
from support import WAIT, drain

#: The fixtures (see conftest) that start private servers and proxies, gone at teardown.
MakeServer = Callable[..., RedisServer]
MakeProxy = Callable[[RedisServer], FaultProxy]

H = TypeVar("H", bound="channels.Sender[Any] | channels.Receiver[Any]")

pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")


def unique(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns()}"


_kept: list[channels.Sender[Any] | channels.Receiver[Any]] = []


def keep(handle: H) -> H:
    """``handle``, closed at the test's teardown: a failing test never reaches its own close."""
    _kept.append(handle)
    return handle


def _cores() -> list[RedisCore]:
    return [o for o in gc.get_objects() if isinstance(o, RedisCore)]


@pytest.fixture(autouse=True)
def _close_kept(
    request: pytest.FixtureRequest, make_server: MakeServer, make_proxy: MakeProxy
) -> Iterator[None]:
    """Close the kept handles before the servers and proxies go (they were made first).

    A failing test's traceback keeps its channels alive, and with them their
    connections: after a failure those are dropped too, so it is reported as
    itself and not again as file descriptors left open. A passing test gets no
    such help: its leaks are its own.
    """
    del make_server, make_proxy
    before = {id(core) for core in _cores()}
    failed = request.session.testsfailed
    yield
    while _kept:
        with contextlib.suppress(ChannelError):
            _kept.pop().close()
    if request.session.testsfailed == failed:
        return
    for core in _cores():
        local = getattr(core, "_local", None)
        if id(core) not in before and local is not None:
            local.client.disconnect()


class Background:
    """Run ``call`` in a thread; ``result()`` gives what it returned or re-raises what it raised."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self._call = call
        self._out: list[Any] = []
        self._err: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._out.append(self._call())
        except BaseException as exc:  # handed to the test by result()
            self._err.append(exc)

    def result(self, timeout: float = WAIT) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the call did not return"
        if self._err:
            raise self._err[0]
        return self._out[0]

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def outcome(self) -> str:
        """What the call returned or raised, once it ended (for assertion messages)."""
        return repr(self._err[0] if self._err else self._out[0] if self._out else None)


# -- lost replies ---------------------------------------------------------------------------


def test_a_lost_reply_to_a_send_loses_no_later_item(make_proxy: MakeProxy) -> None:
    proxy = make_proxy(shared())
    ch = keep(channels.open_channel[str](proxy.url(unique("lostput")), reconnect=WAIT))
    ch.send("warm", timeout=WAIT)
    rule = proxy.drop_reply(b"item-x", after="reject")  # the put ran; its reply is lost
    with pytest.raises(ChannelTimeout):
        ch.send("item-x", timeout=1)
    assert rule.done.is_set()
    proxy.heal()
    ch.send("item-y", timeout=WAIT)
    ch.close()
    items, stop = drain(ch)
    assert stop == "EndOfChannel"
    assert items == ["warm", "item-x", "item-y"]  # x's fate was unknown (it went); y went


def test_send_many_timeout_says_what_went_and_what_may_have(make_proxy: MakeProxy) -> None:
    proxy = make_proxy(shared())
    ch = keep(channels.open_channel[str](proxy.url(unique("lostbatch")), reconnect=WAIT))
    ch.send("warm", timeout=WAIT)
    proxy.drop_reply(b"batch-a", after="reject")
    with pytest.raises(ChannelTimeout) as info:
        ch.send_many(["batch-a", "batch-b"], timeout=1)
    proxy.heal()
    ch.send_many(["batch-c", "batch-d"], timeout=WAIT)
    ch.close()
    items, stop = drain(ch)
    assert stop == "EndOfChannel"
    # Its reply was lost and the server unreachable until the timeout: how many went is not
    # known then. ``sent`` counts those known to be in, ``unsure`` those that may be.
    went = len({"batch-a", "batch-b"} & set(items))
    assert info.value.sent <= went <= info.value.sent + info.value.unsure
    assert info.value.sent + info.value.unsure == 2
    assert items == ["warm", "batch-a", "batch-b", "batch-c", "batch-d"]


def test_a_lost_reply_to_a_blocking_read_keeps_one_senders_order(make_proxy: MakeProxy) -> None:
    server = shared()
    proxy = make_proxy(server)
    name = unique("lostread")
    tx = keep(channels.open_channel[int](server.url(name)))  # unbounded: receivers read blocking
    rx = keep(channels.open_receiver[int](proxy.url(name), reconnect=WAIT))
    rule = proxy.drop_reply(lambda words: words[0].upper() == b"XREADGROUP", after="cut")
    reader = Background(lambda: [rx.recv(timeout=WAIT) for _ in range(3)])
    deadline = time.monotonic() + WAIT
    while not proxy.seen(b"XREADGROUP"):  # the receiver waits in a blocking read
        assert time.monotonic() < deadline
        time.sleep(0.01)
    tx.send(0)
    assert rule.wait(WAIT)  # the read that carried item 0 lost its reply
    tx.send(1)
    tx.send(2)
    tx.close()
    assert reader.result() == [0, 1, 2]
    rx.close()


# -- outages shorter than reconnect -----------------------------------------------------------


def _outage(proxy: FaultProxy, during: bytes, seconds: float = 1.0) -> None:
    """The server unreachable (connections reset) for ``seconds``, then back.

    It starts as the reply to the waiter's next ``during`` command comes back (so
    the waiter is surely inside its wait), or in 3 s if no such command comes.
    """
    aimed = proxy.drop_reply(
        lambda words: words[0].upper() == during, after="reject", nonempty=False
    )
    if not aimed.wait(3):
        proxy.reject()
    time.sleep(seconds)
    proxy.heal()


@pytest.mark.parametrize("how", ["recv()", "recv(timeout=30)", "for item in rx"])
def test_a_one_second_outage_does_not_time_out_a_waiting_receiver(
    make_proxy: MakeProxy, how: str
) -> None:
    server = shared()
    proxy = make_proxy(server)
    name = unique("outage")
    tx = keep(channels.open_channel[int](server.url(name)))
    rx = keep(channels.open_receiver[int](proxy.url(name), reconnect=WAIT))
    calls: dict[str, Callable[[], int]] = {
        "recv()": rx.recv,
        "recv(timeout=30)": lambda: rx.recv(timeout=30),
        "for item in rx": lambda: next(iter(rx)),
    }
    reader = Background(calls[how])
    _outage(proxy, b"XREADGROUP")  # an unbounded channel's receiver waits in a blocking read
    assert reader.running, f"it ended during the outage: {reader.outcome()}"
    tx.send(7)
    assert reader.result() == 7
    tx.close()
    rx.close()


def test_a_one_second_outage_does_not_time_out_a_send_on_a_full_channel(
    make_proxy: MakeProxy,
) -> None:
    server = shared()
    proxy = make_proxy(server)
    name = unique("outagefull")
    tx = keep(channels.open_channel[int](proxy.url(name), maxsize=1, reconnect=WAIT))
    rx = keep(channels.open_receiver[int](server.url(name)))
    tx.send(1)
    writer = Background(lambda: tx.send(2))  # blocks: the channel is full
    time.sleep(0.3)
    _outage(proxy, b"XREAD")  # a sender waits for room by reading the channel's bell
    assert writer.running, f"it ended during the outage: {writer.outcome()}"
    assert rx.recv(timeout=WAIT) == 1
    writer.result()
    assert rx.recv(timeout=WAIT) == 2
    tx.close()
    rx.close()


@pytest.mark.parametrize(
    ("fault", "call"), [("black hole", "send(timeout=1)"), ("stalled server", "recv_nowait()")]
)
def test_a_silent_server_does_not_stretch_a_calls_timeout(
    make_server: MakeServer, make_proxy: MakeProxy, fault: str, call: str
) -> None:
    """A partition or a stall answers nothing (no reset): each call still ends at its timeout."""
    server = make_server()
    proxy = make_proxy(server)
    ch = keep(channels.open_channel[int](proxy.url(unique("silent")), reconnect=WAIT))
    ch.send(1, timeout=WAIT)
    assert ch.recv(timeout=WAIT) == 1  # connected, scripts loaded
    calls: dict[str, Callable[[], object]] = {
        "send(timeout=1)": lambda: ch.send(2, timeout=1),
        "recv(timeout=1)": lambda: ch.recv(timeout=1),
        "recv_nowait()": ch.recv_nowait,
    }
    (proxy.blackhole if fault == "black hole" else server.pause)()
    began = time.monotonic()
    try:
        with pytest.raises(ChannelError):  # ChannelTimeout or WouldBlock
            calls[call]()
        took = time.monotonic() - began
    finally:
        proxy.heal()
        server.resume()
        ch.close()
    assert took < 4, f"{call} took {took:.1f} s"  # its own timeout, and a margin for a busy host


# -- data lost on the server ------------------------------------------------------------------


def _fill_and_take(server: RedisServer, name: str) -> tuple[Any, Any]:
    tx = keep(channels.open_channel[int](server.url(name), reconnect=WAIT, lease=1.0))
    rx = keep(channels.open_receiver[int](server.url(name), reconnect=WAIT, lease=1.0))
    for i in range(10):
        tx.send(i, timeout=WAIT)
    assert [rx.recv(timeout=WAIT) for _ in range(3)] == [0, 1, 2]
    return tx, rx


def _restart_empty(server: RedisServer) -> None:
    server.crash()
    server.start()


LOSSES: dict[str, Callable[[RedisServer], None]] = {
    "restart without persistence": _restart_empty,
    "FLUSHALL": RedisServer.flushall,
}


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_a_sender_sees_lost_data_as_broken(make_server: MakeServer, loss: str) -> None:
    server = make_server()
    tx, rx = _fill_and_take(server, unique("lostsend"))
    LOSSES[loss](server)
    with pytest.raises(ChannelBroken, match="lost"):
        tx.send(10, timeout=5)
    rx.close()


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_a_receiver_sees_lost_data_as_broken(make_server: MakeServer, loss: str) -> None:
    server = make_server()
    tx, rx = _fill_and_take(server, unique("lostrecv"))
    LOSSES[loss](server)
    items, stop = drain(rx, timeout=4)
    assert stop == "ChannelBroken", (items, stop)  # whatever is left, then the loss; no hang
    tx.close()


def test_a_receiver_is_not_ended_cleanly_by_a_sender_that_reopened_after_a_loss(
    make_server: MakeServer,
) -> None:
    server = make_server()
    name = unique("reopen")
    tx, rx = _fill_and_take(server, name)
    server.crash()
    server.start()
    try:  # a producer that reopens by name must not start a fresh channel silently...
        with channels.open_sender[int](server.url(name), reconnect=WAIT) as again:
            again.send(100, timeout=WAIT)
    except ChannelBroken:
        pass  # ...refusing is fine too
    items, stop = drain(rx, timeout=4)
    assert stop == "ChannelBroken", (items, stop)  # never a clean end after a short stream
    tx.close()


def test_a_restart_from_a_stale_snapshot_is_loud(make_server: MakeServer) -> None:
    server = make_server()
    name = unique("stale")
    tx, rx = _fill_and_take(server, name)
    server.snapshot()  # holds items 0..9, 0..2 taken
    for i in range(10, 20):
        tx.send(i, timeout=WAIT)
    assert [rx.recv(timeout=WAIT) for _ in range(3)] == [3, 4, 5]
    server.crash()
    server.start()  # back to the snapshot: items 10..19 and the takes of 3..5 are gone
    try:
        tx.send(20, timeout=5)
        tx.close()
    except ChannelBroken:
        pass  # the sender noticed: good
    items, stop = drain(rx, timeout=4)
    assert stop == "ChannelBroken", (items, stop)


# -- a stalled server -------------------------------------------------------------------------


def test_a_server_stall_longer_than_a_lease_breaks_nothing_and_duplicates_nothing(
    make_server: MakeServer, make_proxy: MakeProxy
) -> None:
    """After a stall, a live process is heard a moment later than another: that is no death.

    The producer and one receiver reach the server through a proxy that holds
    their bytes for the stall and 0.3 s after it; the other receiver's take is
    the first thing the server runs when it resumes.
    """
    server = make_server()
    proxy = make_proxy(server)
    lease = 1.0
    name = unique("stall")
    options: dict[str, Any] = {"lease": lease, "reconnect": WAIT}
    tx = keep(channels.open_channel[tuple[str, int]](proxy.url(name), **options))
    slow = keep(channels.open_receiver[tuple[str, int]](proxy.url(name), **options))
    quick = keep(channels.open_receiver[tuple[str, int]](server.url(name), **options))
    party = Party()
    for seq in range(10):
        tx.send(("p", seq), timeout=WAIT)
        party.sent("p", seq, "returned")
    held = [slow.recv(timeout=WAIT) for _ in range(3)]  # the third is not acknowledged yet
    proxy.blackhole()
    server.pause()
    time.sleep(1.5 * lease)
    first = Background(lambda: quick.recv(timeout=WAIT))  # queued at the stalled server
    time.sleep(0.1)
    server.resume()
    time.sleep(0.3)
    proxy.heal()
    streams = [Stream("slow", held), Stream("quick")]
    try:
        streams[1].items.append(first.result())
        for seq in range(10, 15):
            tx.send(("p", seq), timeout=WAIT)
            party.sent("p", seq, "returned")
        tx.close()
    except ChannelBroken as exc:
        party.broken.append(f"sender or first take: {exc}")

    # Both at once: an item one receiver holds is acknowledged by its next take, and the
    # channel is not drained (so the other cannot see the end) until then.
    def draining(rx: channels.Receiver[tuple[str, int]]) -> Background:
        return Background(lambda: drain(rx, timeout=WAIT))

    drains = [draining(rx) for rx in (slow, quick)]
    for stream, running in zip(streams, drains, strict=True):
        items, stop = running.result(timeout=2 * WAIT)
        stream.items += [(str(s), int(n)) for s, n in items]
        stream.stop = {"EndOfChannel": "end", "ChannelBroken": "broken"}.get(str(stop), str(stop))
        if stop == "ChannelBroken":
            party.broken.append(f"receiver {stream.receiver}")
    party.streams = streams
    assert check(History([party])) == []


# -- a full server ----------------------------------------------------------------------------


def _fill_server(server: RedisServer, ch: Any) -> int:
    """Send 4 kB items until the server refuses one; return how many went."""
    server.full_at(400_000)
    refused: list[ChannelError] = []
    count = 0
    while not refused and count < 10_000:
        try:
            ch.send(b"x" * 4000, timeout=5)
            count += 1
        except ChannelError as exc:
            refused.append(exc)
    assert refused, "the server never filled up"
    assert not isinstance(refused[0], ChannelTimeout)
    assert "memory" in str(refused[0]).lower()  # says why
    return count


def test_a_full_server_lets_receivers_drain(make_server: MakeServer) -> None:
    server = make_server()
    url = server.url(unique("full"))
    ch = keep(channels.open_channel[bytes](url, reconnect=WAIT))
    rx = keep(channels.open_receiver[bytes](url, reconnect=WAIT))
    count = _fill_server(server, ch)
    assert count > 10
    try:
        assert rx.recv(timeout=5) == b"x" * 4000  # a receiver can still take...
        ch.close()  # ...a sender can still close...
        items, stop = drain(rx)  # ...and the channel drains to its end
    finally:
        server.command("CONFIG", "SET", "maxmemory", "0")  # room again for the teardown
    assert (len(items), stop) == (count - 1, "EndOfChannel")


def test_calls_on_a_server_already_full_raise_only_channel_errors(make_server: MakeServer) -> None:
    server = make_server()
    name = unique("fullopen")
    url = server.url(name)
    filler = keep(channels.open_channel[bytes](url, reconnect=WAIT))
    _fill_server(server, filler)
    server.command("SCRIPT", "FLUSH")  # as after a restart: the scripts must be loaded again
    opened: list[Any] = []

    def open_and(opener: Callable[[], Any], use: Callable[[Any], object]) -> None:
        handle = opener()
        opened.append(handle)
        use(handle)

    calls: list[Callable[[], object]] = [
        lambda: open_and(
            lambda: channels.open_sender[bytes](url, reconnect=WAIT),
            lambda tx: tx.send(b"y", timeout=5),
        ),
        lambda: open_and(
            lambda: channels.open_receiver[bytes](url, reconnect=WAIT),
            lambda rx: rx.recv_nowait(),
        ),
        lambda: open_and(lambda: channels.open_channel[bytes](server.url(unique("new"))), repr),
        lambda: filler.send(b"z", timeout=5),
    ]
    try:
        for call in calls:  # each may work or be refused, but only ever as a ChannelError
            with contextlib.suppress(ChannelError):
                call()
    finally:
        server.command("CONFIG", "SET", "maxmemory", "0")  # room again, to close everything
        for handle in [filler, *opened]:
            handle.close()


# -- credentials ------------------------------------------------------------------------------


@pytest.mark.parametrize("password", ["s3cr3t/p4ss", "s3cr3t?p4ss", "s3cr3t/p4ss?w0rd"])
def test_a_password_with_a_raw_slash_or_question_mark_is_never_echoed(password: str) -> None:
    with pytest.raises(ChannelError) as info:
        channels.open_channel[int](f"redis://:{password}@127.0.0.1:1/x?bogus=1", reconnect=0.2)
    told = [str(info.value)]
    cause = info.value.__cause__ or info.value.__context__
    while cause is not None:
        told.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    for part in ("s3cr3t", "p4ss", "w0rd"):
        assert not any(part in text for text in told), told
