"""A producer and a consumer over a queue channel: the consumer stops at the end of the channel."""

from __future__ import annotations

import multiprocessing

import channels


def produce(jobs: channels.Sender[str]) -> None:
    """Send five jobs, then close: closing is what ends the stream, no sentinel needed."""
    with jobs:
        for n in range(5):
            jobs.send(f"job {n}")


def consume(jobs: channels.Receiver[str]) -> None:
    """Handle every job until the channel ends."""
    for job in jobs:
        print(f"consumed {job}", flush=True)
    print("the channel ended", flush=True)


if __name__ == "__main__":
    with channels.open_channel[str]("queue", maxsize=2) as ch:
        producer = multiprocessing.Process(target=produce, args=(ch.sender,))
        consumer = multiprocessing.Process(target=consume, args=(ch.receiver,))
        producer.start()
        consumer.start()
        producer.join()
        consumer.join()
