"""Items a receiver took but has not handed over yet (after an item of a batch failed to
deserialize) are handed over later, never lost, and a failing item is deserialized once."""

from __future__ import annotations

import asyncio
import pickle
from collections import Counter

import pytest

import channels
from channels import ChannelTimeout, SerializationError
from channels._engine import steps as _steps

from support import LOCAL_BACKENDS, WAIT, open_for

#: How many times each item was deserialized, in this process.
loaded: Counter[str] = Counter()


class Counting:
    """Pickle that counts each item it deserializes and refuses the item "bad"."""

    name = "counting"

    def dumps(self, item: object) -> bytes:
        return pickle.dumps(item)

    def loads(self, data: bytes | memoryview) -> object:
        item = pickle.loads(data)
        loaded[str(item)] += 1
        if item == "bad":
            raise ValueError("this item is refused")
        return item


@pytest.mark.serializes
def test_a_failing_item_is_deserialized_once(backend: str) -> None:
    loaded.clear()
    ch = open_for(backend, serializer=Counting())
    ch.send("bad")
    with pytest.raises(SerializationError, match="refused"):
        ch.recv(timeout=WAIT)
    ch.send_many(["a", "bad", "b"])
    assert ch.recv_many(3, timeout=WAIT) == ["a"]  # the good ones first
    with pytest.raises(SerializationError, match="refused"):
        ch.recv(timeout=WAIT)
    assert ch.recv(timeout=WAIT) == "b"

    async def main() -> None:
        await ch.asend_many(["bad", "c"])
        with pytest.raises(SerializationError, match="refused"):
            await ch.arecv_many(2, timeout=WAIT)
        assert await ch.arecv(timeout=WAIT) == "c"

    asyncio.run(main())
    ch.close()
    assert loaded["bad"] == 3  # once for each of the three sent
    assert loaded["b"] == loaded["c"] == 1


def _interrupt_once(point: str) -> None:
    done = False

    def hook(name: str) -> None:
        nonlocal done
        if name == point and not done:
            done = True
            raise KeyboardInterrupt

    _steps.step = hook


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
@pytest.mark.serializes
def test_held_items_survive_an_interrupted_take(backend: str) -> None:
    ch = open_for(backend, serializer=Counting())
    ch.send_many(["a", "bad", "b", "c"])
    assert ch.recv_many(4, timeout=WAIT) == ["a"]  # "bad", "b" and "c" are held now
    got: list[object] = []
    _interrupt_once("recv:locked")  # a Ctrl-C while the next take holds the read lock
    try:
        for _ in range(5):
            try:
                got += ch.recv_many(10, timeout=0.2)
            except SerializationError:
                got.append("refused")
            except KeyboardInterrupt:
                got.append("interrupted")
            except ChannelTimeout:
                break
    finally:
        _steps.step = None
    ch.close()
    assert [item for item in got if item != "interrupted"] == ["refused", "b", "c"]


@pytest.mark.serializes
def test_a_receiver_with_held_items_hands_them_over_before_the_end(backend: str) -> None:
    ch: channels.Channel[str] = open_for(backend, serializer=Counting())
    ch.send_many(["a", "bad", "b"])
    ch.close()
    assert ch.recv_many(3, timeout=WAIT) == ["a"]
    with pytest.raises(SerializationError):
        ch.recv(timeout=WAIT)
    assert list(ch) == ["b"]
