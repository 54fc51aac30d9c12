"""A lock around shared output: each process writes its lines as one block, never interleaved.

The processes append to one file. Holding the lock while writing keeps each
block whole; the pause between lines would otherwise let blocks mix.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time

import channels


def report(lock: channels.Lock, path: str, worker: int) -> None:
    """Write three lines to the shared file, as one block."""
    with lock, open(path, "a") as out:
        for line in range(3):
            out.write(f"worker {worker} line {line}\n")
            out.flush()
            time.sleep(0.01)


if __name__ == "__main__":
    lock = channels.Lock()
    fd, path = tempfile.mkstemp(suffix=".log")
    os.close(fd)
    try:
        workers = [
            multiprocessing.Process(target=report, args=(lock, path, i)) for i in range(3)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        with open(path) as log:
            lines = log.read().splitlines()
    finally:
        os.unlink(path)
    blocks = [lines[i : i + 3] for i in range(0, len(lines), 3)]
    whole = all(len({line.split()[1] for line in block}) == 1 for block in blocks)
    print("every block whole:", whole)
    for block in sorted(blocks):
        print(" | ".join(block))
