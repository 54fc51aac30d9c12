"""A channel's counts outlast it: after the end, every backend still says what went through."""

from __future__ import annotations

import pytest

from channels import EndOfChannel

from support import BACKENDS, WAIT, open_for

Counts = tuple[int, int, int, bool, bool]


def _counts_after_the_end(backend: str) -> list[Counts]:
    """(sent, received, waiting, ended, broken) from each face, once 3 items went through."""
    ch = open_for(backend)
    ch.send_many([1, 2, 3])
    ch.close()
    assert ch.recv_many(5, timeout=WAIT) == [1, 2, 3]
    with pytest.raises(EndOfChannel):
        ch.recv(timeout=WAIT)
    return [
        (s.sent, s.received, s.waiting, s.ended, s.broken)
        for s in (ch.stats(), ch.receiver.stats(), ch.sender.stats())
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_stats_count_what_was_sent_and_received_after_the_end(backend: str) -> None:
    assert _counts_after_the_end(backend) == [(3, 3, 0, True, False)] * 3
