"""A pipeline of pipe channels: numbers go to a process that squares them, squares come back.

Each stage runs until its inbox ends, then closes its outbox, so the end of the
input flows down the pipeline and every stage stops by itself.
"""

from __future__ import annotations

import multiprocessing

import channels


def square(inbox: channels.Receiver[int], outbox: channels.Sender[int]) -> None:
    """Square each number until the inbox ends; then end the outbox."""
    with outbox:
        for n in inbox:
            outbox.send(n * n)


if __name__ == "__main__":
    numbers = channels.open_channel[int]("pipe")
    squares = channels.open_channel[int]("pipe")
    worker = multiprocessing.Process(
        target=square, args=(numbers.receiver, squares.sender.clone())
    )
    worker.start()
    squares.sender.close()  # the worker's clone now decides when squares end
    with numbers.sender:
        numbers.send_many(range(1, 6))
    for result in squares.receiver:
        print(result)
    worker.join()
    print("pipeline done")
