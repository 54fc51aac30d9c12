"""Request and response over ``duplex``."""

from __future__ import annotations

import channels

import children
from support import BACKENDS, THREAD, WAIT, join, server_options, start, takes_start_method


def test_request_and_response_across_processes(backend: str, method: str) -> None:
    options = server_options(backend)
    if method != THREAD and takes_start_method(backend):
        options["context"] = method
    client, server = channels.duplex[int, str](backend, **options)
    worker = start(method, children.serve_squares, server)
    assert [client.request(n, timeout=WAIT) for n in range(5)] == ["0", "1", "4", "9", "16"]
    client.close()
    assert list(client) == []  # the server closed its end after ours
    assert join(worker) == [0]


def test_each_end_is_both_halves() -> None:
    a, b = channels.duplex[int, str](BACKENDS[0])
    assert isinstance(a, channels.Sender)
    assert isinstance(a, channels.Receiver)
    a.send(1)
    assert b.recv(timeout=WAIT) == 1
    b.send_nowait("one")
    assert a.recv_nowait() == "one"
    with a, b:
        pass
    assert a.closed
    assert b.closed
