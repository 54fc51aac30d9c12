"""The baseline for ``redis`` specs: a hand-written redis-py Streams loop on the same server.

What a user of redis-py would write without this library: one ``XADD`` per
item (a pipeline of them per batch), ``XREADGROUP`` in a consumer group, and
one ``XACK`` per read. It pickles its items, as the channel does by default,
and works on a fresh stream of its own, deleted afterwards.
"""

from __future__ import annotations

import os
import pickle
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from .._errors import ConfigError
from .._open import open_receiver

if TYPE_CHECKING:
    import redis

    from .._backends.redis.connection import Server

__all__ = ["make_redis_loop"]

#: Milliseconds one XREADGROUP blocks (below the client's socket timeout); it is then repeated.
_BLOCK_MS = 2000
_GROUP = "g"

_clients: dict[tuple[Server, int], redis.Redis] = {}


def _client(server: Server) -> redis.Redis:
    """This process's client for ``server`` (a child builds its own)."""
    from .._backends.redis.connection import client as connect  # noqa: PLC0415 (optional)

    key = (server, os.getpid())
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = connect(server)
    return client


class _StreamEnds:
    """Both ends of one stream, picklable to a child: the server (no password) and the key."""

    def __init__(self, server: Server, key: str) -> None:
        self.server, self.key = server, key

    def putter(self) -> Callable[[object], None]:
        client, key = _client(self.server), self.key

        def put(item: object) -> None:
            client.xadd(key, {"d": pickle.dumps(item)})

        return put

    def getter(self) -> Callable[[], object]:
        get_list = self.batch_getter(1)

        def get() -> object:
            return get_list()[0]

        return get

    def batch_putter(self) -> Callable[[list[object]], None]:
        client, key = _client(self.server), self.key

        def put_list(items: list[object]) -> None:
            pipe = client.pipeline(transaction=False)  # pyright: ignore[reportUnknownMemberType]
            for item in items:
                pipe.xadd(key, {"d": pickle.dumps(item)})
            pipe.execute()

        return put_list

    def batch_getter(self, max_items: int) -> Callable[[], list[object]]:
        client, key = _client(self.server), self.key
        consumer = f"c-{os.getpid()}-{secrets.token_hex(4)}"

        def get_list() -> list[object]:
            while True:
                reply: Any = client.xreadgroup(
                    _GROUP, consumer, {key: ">"}, count=max_items, block=_BLOCK_MS
                )
                if reply:
                    break
            entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", reply[0][1])
            client.xack(key, _GROUP, *[entry_id for entry_id, _ in entries])
            return [pickle.loads(fields[b"d"]) for _, fields in entries]

        return get_list


def make_redis_loop(spec: str) -> tuple[_StreamEnds, Callable[[], None]]:
    """A fresh stream and consumer group on the server ``spec`` names, and how to delete it."""
    receiver = open_receiver[object](spec)  # starts nothing on the server: only finds it
    core: object = getattr(receiver, "_core", None)
    server: Server | None = getattr(getattr(core, "ref", None), "server", None)
    receiver.close()
    if server is None:
        raise ConfigError(f"{spec!r} is not a redis channel")
    key = f"channels-bench:{{loop-{secrets.token_hex(8)}}}"
    client = _client(server)
    client.xgroup_create(key, _GROUP, id="0", mkstream=True)

    def delete() -> None:
        client.delete(key)
        # Close this process's connections: a bench run leaves no descriptor open.
        _clients.pop((server, os.getpid()), client).connection_pool.disconnect()

    return _StreamEnds(server, key), delete
