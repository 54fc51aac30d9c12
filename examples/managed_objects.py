"""A dict and a list held by a manager server, shared by processes through typed proxies."""

from __future__ import annotations

import multiprocessing
from collections.abc import MutableMapping, MutableSequence

import channels


def score(scores: MutableMapping[str, int], log: MutableSequence[str], player: str) -> None:
    """Record a player's score and a line in the log."""
    scores[player] = len(player) * 10
    log.append(f"{player} played")


if __name__ == "__main__":
    with channels.ChannelManager() as manager:
        scores = manager.dict[str, int]()
        log = manager.list[str]()
        players = ["ada", "grace", "linus"]
        workers = [
            multiprocessing.Process(target=score, args=(scores, log, p)) for p in players
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        for player in sorted(scores):
            print(f"{player}: {scores[player]}")
        print("log:", sorted(log))
