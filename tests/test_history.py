"""The history checker on hand-made histories: it passes a correct run and names each fault."""

from __future__ import annotations

from pathlib import Path

from history import History, Outcome, Party, Stream, check


def run(
    sends: dict[str, list[Outcome]],
    streams: dict[str, tuple[list[tuple[str, int]], str]],
    broken: tuple[str, ...] = (),
    **flags: bool,
) -> History:
    """A history of one party per sender and one per receiver."""
    parties: list[Party] = []
    for sender, outcomes in sends.items():
        party = Party()
        for seq, outcome in enumerate(outcomes):
            party.sent(sender, seq, outcome)
        parties.append(party)
    for receiver, (items, stop) in streams.items():
        parties.append(Party(streams=[Stream(receiver, items, stop)]))
    if broken:
        parties.append(Party(broken=list(broken)))
    return History(parties, **flags)


OK: list[Outcome] = ["returned"] * 3


def test_a_correct_run_passes() -> None:
    history = run(
        {"a": OK, "b": OK},
        {
            "r1": ([("a", 0), ("b", 0), ("a", 1)], "end"),
            "r2": ([("b", 1), ("a", 2), ("b", 2)], "end"),
        },
    )
    assert check(history) == []


def test_a_lost_item_is_caught() -> None:
    problems = check(run({"a": OK}, {"r": ([("a", 0), ("a", 2)], "end")}))
    assert problems == [
        "1 item(s) that send returned for were lost: a#1",
        "receiver r ended cleanly with 1 returned item(s) missing",
    ]


def test_an_item_of_unknown_fate_may_arrive_or_not() -> None:
    uncertain: list[Outcome] = ["returned", "uncertain", "uncertain", "returned"]
    history = run({"a": uncertain}, {"r": ([("a", 0), ("a", 2), ("a", 3)], "end")})
    assert check(history) == []


def test_a_duplicate_is_caught_within_and_across_receivers() -> None:
    within = check(run({"a": OK}, {"r": ([("a", 0), ("a", 1), ("a", 1), ("a", 2)], "end")}))
    assert "a#1 was received 2 times" in within
    assert "receiver r got a#1 after a#1" in within
    across = check(
        run({"a": OK}, {"r1": ([("a", 0), ("a", 1)], "end"), "r2": ([("a", 1), ("a", 2)], "end")})
    )
    assert across == ["a#1 was received 2 times"]


def test_duplicates_are_allowed_only_when_processes_were_killed() -> None:
    streams = {"r1": ([("a", 0), ("a", 1)], "broken"), "r2": ([("a", 1), ("a", 2)], "end")}
    assert check(run({"a": OK}, streams, ("r1: its sender died",), crashes=True)) == []


def test_a_reorder_within_one_sender_is_caught() -> None:
    problems = check(
        run(
            {"a": OK, "b": OK},
            {"r": ([("a", 1), ("b", 0), ("a", 0), ("a", 2), ("b", 1), ("b", 2)], "end")},
        )
    )
    assert problems == ["receiver r got a#0 after a#1"]


def test_items_never_sent_or_said_not_sent_are_caught() -> None:
    batch: list[Outcome] = ["returned", "not_sent"]
    problems = check(run({"a": batch}, {"r": ([("a", 0), ("a", 1), ("z", 0)], "end")}))
    assert problems == [
        "a#1 was received although its send said it did not go",
        "z#0 was received but never sent",
    ]


def test_a_hang_is_caught() -> None:
    assert check(run({"a": OK}, {"r": ([("a", 0), ("a", 1), ("a", 2)], "hang")})) == [
        "receiver r hung: no item and no end"
    ]


def test_any_other_error_at_a_receiver_is_caught() -> None:
    assert check(run({"a": OK}, {"r": ([("a", 0), ("a", 1), ("a", 2)], "ChannelClosed")})) == [
        "receiver r stopped with ChannelClosed"
    ]


def test_data_lost_silently_is_caught() -> None:
    problems = check(run({"a": OK}, {"r": ([("a", 0)], "end")}, lost_data=True))
    assert problems == [
        "2 item(s) that send returned for were lost: a#1, a#2",
        "receiver r ended cleanly with 2 returned item(s) missing",
        "the server lost data and no handle raised ChannelBroken",
    ]


def test_data_lost_loudly_excuses_the_loss_but_not_a_clean_short_end() -> None:
    loud = ("r: the server lost the channel's data",)
    assert check(run({"a": OK}, {"r": ([("a", 0)], "broken")}, loud, lost_data=True)) == []
    stale = {"r": ([("a", 0), ("a", 1), ("a", 1)], "broken")}  # a stale snapshot redelivers
    assert check(run({"a": OK}, stale, loud, lost_data=True)) == []
    short = check(run({"a": OK}, {"r": ([("a", 0)], "end")}, loud, lost_data=True))
    assert short == ["receiver r ended cleanly with 2 returned item(s) missing"]


def test_a_channel_broken_with_no_cause_is_caught() -> None:
    problems = check(
        run({"a": OK}, {"r": ([("a", 0), ("a", 1), ("a", 2)], "broken")}, ("a: senders died",))
    )
    assert problems == ["ChannelBroken with no data lost and nobody killed: a: senders died"]


def test_an_unexpected_error_at_a_sender_is_caught() -> None:
    history = run({"a": ["returned", "not_sent"]}, {"r": ([("a", 0)], "end")})
    history.parties[0].errors.append("a: ChannelClosed on an open handle")
    assert check(history) == ["unexpected error: a: ChannelClosed on an open handle"]


def test_parties_travel_as_json(tmp_path: Path) -> None:
    party = Party(streams=[Stream("r", [("a", 0), ("a", 1)], "end")], broken=["x"], errors=["y"])
    party.sent("a", 0, "returned")
    party.sent("a", 1, "uncertain")
    party.dump(tmp_path / "p.json")
    assert Party.load(tmp_path / "p.json") == party
