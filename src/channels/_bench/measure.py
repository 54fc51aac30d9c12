"""One measurement: a throughput run or a ping-pong, of a channel, a primitive or faster-fifo."""

from __future__ import annotations

import multiprocessing
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import cast
from urllib.parse import urlsplit, urlunsplit

from .._errors import EndOfChannel
from .._open import ChannelOptions, open_channel
from .model import (
    BenchError,
    Workload,
)
from .primitives import RAW_PRIMITIVES, RawEnds, make_faster_fifo, make_raw
from .processes import STEP_TIMEOUT, ping_pong, stop, throughput
from .redis_loop import make_redis_loop
from .workers import (
    Items,
    channel_consumer,
    channel_echo,
    channel_producer,
    raw_consumer,
    raw_echo,
    raw_producer,
)

__all__ = [
    "LOOP_NOTE",
    "Shape",
    "Target",
    "channel_latency",
    "channel_rate",
    "fifo_rate",
    "fresh",
    "make_raw_ends",
    "raw_latency",
    "raw_rate",
]


LOOP_NOTE = "one XADD per item, XREADGROUP in a consumer group, one XACK per read"


@dataclass(frozen=True)
class Target:
    """One channel spec to measure, checked."""

    backend: str
    spec: str
    options: ChannelOptions
    maxsize: int
    remote: bool
    many: bool  # takes several producers and consumers

    @property
    def has_raw(self) -> bool:
        return self.backend in RAW_PRIMITIVES

    @property
    def on_redis(self) -> bool:
        return self.backend in ("redis", "rediss")


def fresh(spec: str) -> str:
    """``spec`` with a name no run used before, when it names a channel.

    A named channel ends for good when a run closes it, so each run (and each
    of the two channels of a latency run) opens one of its own.
    """
    if "://" not in spec:
        return spec
    parts = urlsplit(spec)
    if not parts.path.strip("/"):
        return spec
    path = f"{parts.path.rstrip('/')}-bench-{secrets.token_hex(6)}"
    return urlunsplit(parts._replace(path=path))


def make_raw_ends(
    target: Target, ctx: BaseContext, shared: bool
) -> tuple[RawEnds, Callable[[], None]]:
    """The baseline of ``target``: its stdlib primitive, or for redis a redis-py Streams loop."""
    if target.on_redis:
        return make_redis_loop(target.spec)
    return make_raw(target.backend, ctx, target.maxsize, shared)


@dataclass(frozen=True)
class Shape:
    """What a throughput run sends, and between how many processes."""

    items: Items
    count: int
    producers: int
    consumers: int

    @property
    def shared(self) -> bool:
        return self.producers > 1 or self.consumers > 1


def raw_rate(ctx: BaseContext, shape: Shape, made: tuple[RawEnds, Callable[[], None]]) -> float:
    ends, dispose = made

    def pills() -> None:
        put = ends.putter()
        for _ in range(shape.consumers):
            put(None)

    try:
        return throughput(
            ctx,
            count=shape.count,
            producers=shape.producers,
            consumers=shape.consumers,
            producer=lambda n: (raw_producer, (ends, n, shape.items)),
            consumer=(raw_consumer, (ends, shape.items)),
            after_producers=pills,
        )
    finally:
        dispose()


def channel_rate(ctx: BaseContext, shape: Shape, target: Target) -> float:
    ch = open_channel[object](fresh(target.spec), **target.options)
    senders = iter([ch.sender.clone() for _ in range(shape.producers)])
    ch.close()
    try:
        return throughput(
            ctx,
            count=shape.count,
            producers=shape.producers,
            consumers=shape.consumers,
            producer=lambda n: (channel_producer, (next(senders), n, shape.items)),
            consumer=(channel_consumer, (ch.receiver, shape.items)),
            after_producers=lambda: None,
        )
    finally:
        for tx in senders:
            tx.close()
        ch.receiver.close()


def raw_latency(ctx: BaseContext, target: Target, w: Workload) -> tuple[float, float]:
    requests, dispose_requests = make_raw_ends(target, ctx, False)
    try:
        replies, dispose_replies = make_raw_ends(target, ctx, False)
        try:
            put = requests.putter()
            return ping_pong(
                ctx,
                pings=w.pings,
                payload=Items(w.size).payload(),
                echo=(raw_echo, (requests, replies)),
                put=put,
                get=replies.getter(),
                finish=lambda: put(None),
            )
        finally:
            dispose_replies()
    finally:
        dispose_requests()


def channel_latency(ctx: BaseContext, target: Target, w: Workload) -> tuple[float, float]:
    requests = open_channel[object](fresh(target.spec), **target.options)
    replies = open_channel[object](fresh(target.spec), **target.options)

    def finish() -> None:
        requests.close()
        try:
            replies.recv(STEP_TIMEOUT)
        except EndOfChannel:
            return
        raise BenchError("the echo process sent an item nobody asked for")

    try:
        return ping_pong(
            ctx,
            pings=w.pings,
            payload=Items(w.size).payload(),
            echo=(channel_echo, (requests.receiver, replies.sender)),
            put=requests.send,
            get=replies.recv,
            finish=finish,
        )
    finally:
        requests.close()
        replies.close()


def fifo_rate(ctx: BaseContext, shape: Shape) -> float:
    """faster_fifo's throughput, measured from a process of its own.

    faster_fifo takes its buffer from multiprocessing's shared heap, which keeps
    the memory and its file descriptors for the rest of the process's life: a
    short-lived host process keeps them out of the caller.
    """
    reader, writer = ctx.Pipe(duplex=False)
    make = cast("Callable[..., BaseProcess]", ctx.Process)  # type: ignore[attr-defined]
    host = make(
        target=_fifo_host,
        args=(shape, ctx.get_start_method(), writer),
        name="bench-faster-fifo",
    )
    try:
        host.start()
        writer.close()
        try:
            if not reader.poll(2 * STEP_TIMEOUT):
                raise BenchError("the faster_fifo run did not finish in time")
            ok, value = cast("tuple[bool, float | str]", reader.recv())
        except EOFError:
            host.join(5)
            raise BenchError(f"the faster_fifo run exited with code {host.exitcode}") from None
    finally:
        writer.close()
        reader.close()
        stop([host])
    if not ok or isinstance(value, str):
        raise BenchError(f"the faster_fifo run failed: {value}")
    return value


def _fifo_host(shape: Shape, method: str, conn: Connection) -> None:
    """In a child: build a faster_fifo queue, run the measurement, send back the rate."""
    with conn:
        try:
            made = make_faster_fifo(shape.items.size * shape.items.batch)
            if made is None:
                raise BenchError("faster_fifo is not installed")
            conn.send((True, raw_rate(multiprocessing.get_context(method), shape, made)))
        except Exception as exc:
            conn.send((False, f"{type(exc).__name__}: {exc}"))
