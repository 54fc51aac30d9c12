"""Two writers and one reader on one channel: each writer has its own sender handle.

The channel ends once both writers have closed their handles. Items of one
writer arrive in the order it sent them.
"""

from __future__ import annotations

import multiprocessing

import channels


def write(out: channels.Sender[tuple[str, int]], name: str) -> None:
    """Send three numbered lines, then close this writer's handle."""
    with out:
        for n in range(3):
            out.send((name, n))


if __name__ == "__main__":
    with channels.open_channel[tuple[str, int]]("queue") as ch:
        writers = [
            multiprocessing.Process(target=write, args=(ch.sender.clone(), name))
            for name in ("alpha", "beta")
        ]
        for w in writers:
            w.start()
        ch.sender.close()  # our own handle: the writers' clones keep the channel open
        got = list(ch.receiver)
        for w in writers:
            w.join()
    for name in ("alpha", "beta"):
        print(name, [n for who, n in got if who == name])
    print("items received:", len(got))
