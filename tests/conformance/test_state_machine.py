"""Random send/recv/clone/close sequences against a model of the contract."""

from __future__ import annotations

import unittest
from collections import deque

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import channels
from channels import ChannelClosed, ChannelTimeout, EndOfChannel, Sender, WouldBlock

from support import BACKENDS, BOUNDED_BACKENDS, open_for


class ChannelModel(RuleBasedStateMachine):
    """Drives one channel and a plain-Python model of it side by side."""

    backend = "queue"
    handles = Bundle("handles")

    def __init__(self) -> None:
        super().__init__()
        self.items: deque[int] = deque()
        self.open: dict[int, bool] = {}
        self.made: list[Sender[int]] = []  # every clone, to close at the end
        self.maxsize = 0

    @initialize(target=handles, maxsize=st.sampled_from([0, 0, 1, 3]))
    def open_channel(self, maxsize: int) -> Sender[int]:
        self.maxsize = maxsize if self.backend in BOUNDED_BACKENDS else 0
        options = {"maxsize": self.maxsize} if self.maxsize else {}
        self.ch: channels.Channel[int] = open_for(self.backend, None, **options)
        self.open[id(self.ch.sender)] = True
        return self.ch.sender

    @property
    def ended(self) -> bool:
        return not any(self.open.values())

    @property
    def full(self) -> bool:
        return bool(self.maxsize) and len(self.items) >= self.maxsize

    @rule(handle=handles, value=st.integers(-(2**40), 2**40), nowait=st.booleans())
    def send(self, handle: Sender[int], value: int, nowait: bool) -> None:
        if not self.open[id(handle)]:
            with pytest.raises(ChannelClosed):
                handle.send_nowait(value) if nowait else handle.send(value, timeout=0.01)
        elif self.full:
            with pytest.raises(WouldBlock if nowait else ChannelTimeout):
                handle.send_nowait(value) if nowait else handle.send(value, timeout=0.01)
        else:
            handle.send_nowait(value) if nowait else handle.send(value, timeout=5)
            self.items.append(value)

    @rule(nowait=st.booleans())
    def recv(self, nowait: bool) -> None:
        if self.items:
            got = self.ch.recv_nowait() if nowait else self.ch.recv(timeout=5)
            assert got == self.items.popleft()
        elif self.ended:
            with pytest.raises(EndOfChannel):
                self.ch.recv_nowait() if nowait else self.ch.recv(timeout=5)
        else:
            with pytest.raises(WouldBlock if nowait else ChannelTimeout):
                self.ch.recv_nowait() if nowait else self.ch.recv(timeout=0.01)

    @rule(target=handles, handle=handles)
    def clone(self, handle: Sender[int]) -> Sender[int]:
        if not self.open[id(handle)]:
            with pytest.raises(ChannelClosed):
                handle.clone()
            return handle
        new = handle.clone()
        self.open[id(new)] = True
        self.made.append(new)
        return new

    @rule(handle=handles)
    def close(self, handle: Sender[int]) -> None:
        handle.close()
        self.open[id(handle)] = False

    @precondition(lambda self: hasattr(self, "ch"))
    @invariant()
    def closed_matches(self) -> None:
        assert self.ch.closed == (not self.open[id(self.ch.sender)])

    def teardown(self) -> None:
        for handle in self.made:
            handle.close()
        if hasattr(self, "ch"):
            self.ch.close()
            del self.ch


def _machine_test(backend: str) -> type[unittest.TestCase]:
    """The state machine's test case for one backend."""
    machine: type[ChannelModel] = type(
        f"{backend.title()}Model", (ChannelModel,), {"backend": backend}
    )
    case = machine.TestCase
    case.settings = settings(
        max_examples=25 if backend not in ("manager", "redis") else 8,
        stateful_step_count=30,
        deadline=None,
    )
    return case


globals().update({f"test_{b}_against_the_model": _machine_test(b) for b in BACKENDS})
