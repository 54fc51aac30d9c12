"""The serializers: what they return, what they can carry, how they fail."""

from __future__ import annotations

import multiprocessing
import pickle
import socket
from multiprocessing import resource_sharer

import pytest

from channels import ConfigError, SerializationError
from channels._serialize import JSON, PICKLE, resolve_serializer


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
