"""Each condition a channel can meet maps to one exception, and travels between processes."""

from __future__ import annotations

import pickle

import pytest

from channels import (
    ChannelBroken,
    ChannelClosed,
    ChannelError,
    ChannelTimeout,
    ConfigError,
    EndOfChannel,
    WouldBlock,
)
from channels._engine.conditions import (
    Broken,
    Condition,
    Detail,
    condition_of,
    error,
    error_from,
    timed_out,
)

# One example of each condition with its details, and what it raises.
_EXAMPLES: dict[Condition, tuple[tuple[Detail, ...], type[ChannelError], str]] = {
    Condition.SENDER_CLOSED: ((), ChannelClosed, "sender handle is closed"),
    Condition.CLONE_CLOSED: ((), ChannelClosed, "cannot clone"),
    Condition.RECEIVER_CLOSED: ((), ChannelClosed, "receiver is closed"),
    Condition.SENDER_REFUSED: (("jobs", True), ChannelClosed, "'jobs' has ended"),
    Condition.ENDED: ((), EndOfChannel, "every sender closed"),
    Condition.BROKEN: ((Broken.TORN, "read a header"), ChannelBroken, r"writing an item \(read"),
    Condition.LOST_UNFINISHED: ((2,), ChannelBroken, "2 item"),
    Condition.FULL: ((), WouldBlock, "full"),
    Condition.NOTHING_READY: ((), WouldBlock, "no item"),
    Condition.TIMED_OUT: ((True, 3), ChannelTimeout, "stayed full"),
    Condition.NOT_JOINABLE: (("join()",), ChannelError, r"join\(\) needs"),
    Condition.OVER_MARKED: ((), ChannelError, "more times"),
    Condition.NO_CHANNEL: ((7,), ChannelError, "no channel 7"),
    Condition.MISMATCH: (
        ("jobs", "maxsize", 2, 3, "joinable", False, True),
        ConfigError,
        r"maxsize=2, joinable=False; .* maxsize=3, joinable=True",
    ),
}


def test_every_condition_has_an_example() -> None:
    assert set(_EXAMPLES) == set(Condition)


@pytest.mark.parametrize("condition", list(Condition), ids=lambda c: c.name)
def test_a_condition_raises_its_error_here_and_after_a_trip(condition: Condition) -> None:
    details, kind, message = _EXAMPLES[condition]
    made = error(condition, *details)
    assert type(made) is kind
    with pytest.raises(kind, match=message):
        raise made
    report = condition_of(made)
    assert report == (condition.value, details)
    again = error_from(pickle.loads(pickle.dumps(report)))
    assert type(again) is kind
    assert str(again) == str(made)


def test_every_reason_of_a_break_has_its_words() -> None:
    texts = {str(error(Condition.BROKEN, why)) for why in Broken}
    assert len(texts) == len(Broken)
    assert "the channel is broken" not in texts


def test_a_timeout_keeps_what_was_sent() -> None:
    assert timed_out(True, 4).sent == 4
    assert condition_of(timed_out(False)) == (Condition.TIMED_OUT.value, (False, 0))


def test_other_errors_carry_no_condition() -> None:
    assert condition_of(KeyError("k")) is None
    assert condition_of(ChannelError("made by hand")) is None


_NONSENSE: list[object] = [(99, ()), "ended", (5, ([1],)), (5,)]


@pytest.mark.parametrize("report", _NONSENSE)
def test_a_report_that_makes_no_sense_is_a_plain_channel_error(report: object) -> None:
    made = error_from(report)
    assert type(made) is ChannelError
    assert "unknown condition" in str(made)
