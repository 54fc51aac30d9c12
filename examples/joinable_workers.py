"""Worker processes drain a joinable channel; the producer waits until every task is done.

``join()`` returns once every task sent has been received and marked done with
``task_done()``. Closing the channel then ends it, and each worker's loop stops:
no poison pills.
"""

from __future__ import annotations

import multiprocessing

import channels


def work(tasks: channels.Receiver[int], results: channels.Sender[tuple[int, int]]) -> None:
    """Cube each task until the channel ends, marking each one done."""
    with results:
        for n in tasks:
            results.send((n, n**3))
            tasks.task_done()


if __name__ == "__main__":
    tasks = channels.open_channel[int]("queue", joinable=True)
    results = channels.open_channel[tuple[int, int]]("queue")
    workers = [
        multiprocessing.Process(target=work, args=(tasks.receiver, results.sender.clone()))
        for _ in range(3)
    ]
    for w in workers:
        w.start()
    results.sender.close()
    tasks.send_many(range(10))
    tasks.join(timeout=60)
    print("all tasks done")
    tasks.close()  # the end of the channel stops the workers
    for n, cube in sorted(results.receiver):
        print(f"{n}^3 = {cube}")
    for w in workers:
        w.join()
