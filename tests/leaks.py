"""Which named semaphores this test run made, told apart from any other program's.

multiprocessing names a semaphore ``<semprefix>-<random>``, reading the prefix
from the current process's config, which every child inherits under fork, spawn
and forkserver alike. A prefix of the run's own therefore marks every semaphore
made by the test process or any process it started, so the leak checks ignore
semaphores that other programs on the machine create and remove meanwhile.
"""

from __future__ import annotations

import contextlib
import os
from multiprocessing import process
from pathlib import Path
from typing import cast

SHM = "/dev/shm"


def isolate_semaphore_names() -> str:
    """Give this process, and every child it starts from now on, a semaphore prefix of its own.

    Returns:
        The file name prefix of this run's semaphores in ``/dev/shm``.
    """
    config = cast("dict[str, object]", vars(process.current_process())["_config"])
    config["semprefix"] = f"/mp-run{os.getpid()}"
    return own_prefix()


def own_prefix() -> str:
    """The ``/dev/shm`` file name prefix of the semaphores this run's processes make."""
    config = cast("dict[str, object]", vars(process.current_process())["_config"])
    return f"sem.{str(config['semprefix']).lstrip('/')}-"


def own_semaphores() -> set[str]:
    """The named semaphores in ``/dev/shm`` that this run's processes made and left."""
    prefix = own_prefix()
    try:
        return {name for name in os.listdir(SHM) if name.startswith(prefix)}
    except OSError:
        return set()


def named_shared_memory(pid: int) -> set[str]:
    """The named shared memory (files in /dev/shm other than semaphores) that ``pid`` maps
    or holds open: its own, never another program's."""
    found: set[str] = set()
    try:
        lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    paths = [line.split(maxsplit=5)[-1] for line in lines]
    for fd in fds:
        with contextlib.suppress(OSError):
            paths.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    for path in paths:
        if path.startswith(SHM + "/") and not path.startswith(SHM + "/sem."):
            found.add(path.removesuffix(" (deleted)"))
    return found
