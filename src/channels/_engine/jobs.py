"""Jobs: what one call asks of a core, one non-blocking step at a time (see ``driving``).

A job's ``step`` is one call of the core, and ``done`` reads what the step
returned; the loop that runs it decides when to step and when to pause.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from .._errors import ChannelTimeout
from .contract import Core

__all__ = ["Job", "Put", "Take"]

R = TypeVar("R")
X = TypeVar("X")


class Job(Protocol[R]):
    """What one call asks of a core; ``step`` returns an ``R``."""

    @property
    def sending(self) -> bool:
        """Whether the job puts (it waits for room) or takes (it waits for items)."""
        ...

    @property
    def sent(self) -> int:
        """Items of the batch that went so far: what a timeout reports."""
        ...

    def step(self, deadline: float | None) -> R:
        """One non-blocking call of the core; a busy lock may hold it until ``deadline``."""
        ...

    def done(self, result: R) -> bool:
        """Note what a step returned; whether the job is over."""
        ...

    def keep(self, result: R) -> None:
        """A step whose task left returned ``result``: keep what it took for the next call."""
        ...


class Put:
    """A send's job: put what is left of ``data`` until all of it went."""

    __slots__ = ("_core", "_data", "_token", "sent")

    sending = True

    def __init__(self, core: Core, token: int, data: Sequence[Any], sent: int = 0) -> None:
        self._core = core
        self._token = token
        self._data = data
        self.sent = sent

    def step(self, deadline: float | None) -> int:
        sent = self.sent
        try:
            return self._core.put(self._token, self._data[sent:] if sent else self._data, deadline)
        except ChannelTimeout as exc:  # a reply lost: exc.unsure may have gone too
            if not sent:
                raise
            raise ChannelTimeout(str(exc), sent=sent + exc.sent, unsure=exc.unsure) from exc

    def done(self, result: int) -> bool:
        self.sent += result
        return self.sent >= len(self._data)

    def keep(self, result: int) -> None:
        """Nothing to keep: what a put its task left sent is in the channel."""


class Take(Generic[X]):
    """A receive's job: take up to a batch (``take``) until some items come; ``got`` holds them."""

    __slots__ = ("_keep", "_take", "got")

    sending = False
    sent = 0

    def __init__(
        self,
        take: Callable[[float | None], list[X]],
        keep: Callable[[list[X]], object] | None = None,
    ) -> None:
        self._take = take
        self._keep = keep
        self.got: list[X] = []

    def step(self, deadline: float | None) -> list[X]:
        return self._take(deadline)

    def done(self, result: list[X]) -> bool:
        self.got = result
        return bool(result)

    def keep(self, result: list[X]) -> None:
        if result and self._keep is not None:
            self._keep(result)
