"""The serializers: what they return, what they can carry, how they fail."""

from __future__ import annotations

import multiprocessing
import pickle
import socket
from multiprocessing import resource_sharer

import pytest

import channels
from channels import ConfigError, SerializationError
from channels._codec.serializers import JSON, PICKLE, resolve_serializer, serializer_name


def test_pickle_returns_plain_bytes() -> None:
    # A view into the pickler's buffer, kept alive by a traceback in a reference
    # cycle, crashes the garbage collector of some Python versions.
    data = PICKLE.dumps({"a": [1, 2, 3]})
    assert type(data) is bytes
    assert pickle.loads(data) == {"a": [1, 2, 3]}


def test_pickle_carries_what_multiprocessing_can() -> None:
    reader, writer = multiprocessing.Pipe(duplex=False)
    left, right = socket.socketpair()
    try:
        connection = pickle.loads(PICKLE.dumps(reader))
        sock = pickle.loads(PICKLE.dumps(left))
        try:
            assert type(connection).__name__ == "Connection"
            assert isinstance(sock, socket.socket)
        finally:
            connection.close()
            sock.close()
    finally:
        for closable in (reader, writer, left, right):
            closable.close()
        resource_sharer.stop()  # pickling them outside process start started it


class _Reentrant:
    def __reduce__(self) -> tuple[type[list[int]], tuple[list[int]]]:
        PICKLE.dumps([1, 2, 3])  # pickling this item pickles something else first
        return (list, ([4],))


def test_pickling_that_pickles_again_still_works() -> None:
    assert pickle.loads(PICKLE.dumps([_Reentrant(), "tail"])) == [[4], "tail"]


def test_json_is_plain_data_only() -> None:
    assert JSON.loads(JSON.dumps({"x": [1, "two", None]})) == {"x": [1, "two", None]}
    with pytest.raises(TypeError):
        JSON.dumps({1, 2})
    with pytest.raises(ValueError, match="not JSON compliant"):
        JSON.dumps(float("nan"))


def test_serializer_choice() -> None:
    assert resolve_serializer(None) is PICKLE
    assert resolve_serializer("json") is JSON
    assert resolve_serializer(JSON) is JSON
    with pytest.raises(ConfigError, match="choose one of"):
        resolve_serializer("yaml")
    with pytest.raises(ConfigError):
        resolve_serializer(42)
    assert issubclass(SerializationError, Exception)


class Reversed:
    """A serializer with only dumps and loads, as README describes."""

    def dumps(self, item: object) -> bytes:
        return PICKLE.dumps(item)[::-1]

    def loads(self, data: bytes | memoryview) -> object:
        return pickle.loads(bytes(data)[::-1])


class ExitsOn:
    """Raises ``SystemExit`` (or another exception) while serializing or deserializing."""

    def __init__(self, when: str, error: BaseException) -> None:
        self.when, self.error = when, error

    def dumps(self, item: object) -> bytes:
        if self.when == "dumps" and item == "boom":
            raise self.error
        return PICKLE.dumps(item)

    def loads(self, data: bytes | memoryview) -> object:
        item = pickle.loads(data)
        if self.when == "loads" and item == "boom":
            raise self.error
        return item


def test_a_serializer_needs_only_dumps_and_loads() -> None:
    codec = Reversed()
    assert resolve_serializer(codec) is codec
    assert serializer_name(codec) == "Reversed"
    assert serializer_name(PICKLE) == "pickle"
    with channels.open_channel[tuple[int, str]]("queue", serializer=codec) as ch:
        ch.send((1, "one"))
        assert ch.recv(timeout=10) == (1, "one")


def round_trip(ch: channels.Channel[str], item: str) -> str:
    ch.send(item)
    return ch.recv(timeout=10)


@pytest.mark.parametrize("when", ["dumps", "loads"])
def test_system_exit_in_the_serializer_is_a_serialization_error(when: str) -> None:
    with channels.open_channel[str]("queue", serializer=ExitsOn(when, SystemExit(0))) as ch:
        with pytest.raises(SerializationError, match="ExitsOn: SystemExit: 0") as caught:
            round_trip(ch, "boom")
        assert isinstance(caught.value.__cause__, SystemExit)
        assert round_trip(ch, "fine") == "fine"  # the channel keeps working


@pytest.mark.parametrize("when", ["dumps", "loads"])
def test_ctrl_c_in_the_serializer_still_propagates(when: str) -> None:
    ch = channels.open_channel[str]("queue", serializer=ExitsOn(when, KeyboardInterrupt()))
    with ch, pytest.raises(KeyboardInterrupt):
        round_trip(ch, "boom")


def test_too_large_an_item_says_its_type_and_size() -> None:
    with channels.open_channel[bytes]("queue", max_message_size=100) as ch:
        with pytest.raises(SerializationError) as caught:
            ch.send(b"x" * 2000)
        assert str(caught.value).startswith("an item of type bytes serializes to 20")
        assert "more than max_message_size=100; nothing was sent" in str(caught.value)


def test_json_gives_a_tuple_back_as_a_list() -> None:
    """README says so: JSON has arrays, not tuples."""
    with channels.open_channel[object]("queue", serializer="json") as ch:
        ch.send((1, 2))
        assert ch.recv(timeout=10) == [1, 2]
