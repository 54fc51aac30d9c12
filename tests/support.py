"""Helpers the tests share (importable, unlike conftest)."""

from __future__ import annotations

import importlib.util
import itertools
import multiprocessing
import os
import shutil
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, cast

import channels

METHODS = ["fork", "spawn", "forkserver"]
#: The "start method" of the thread backend's cases: workers are threads of this process.
THREAD = "thread"
LOCAL_BACKENDS = ["pipe", "queue", "simplequeue"]
HAVE_MANAGER = importlib.util.find_spec("channels._backends.manager") is not None
#: The shared suites run over redis when a redis-server can be started and redis-py is installed.
HAVE_REDIS = bool(shutil.which("redis-server")) and importlib.util.find_spec("redis") is not None
PROCESS_BACKENDS = [
    *LOCAL_BACKENDS,
    *(["manager"] if HAVE_MANAGER else []),
    *(["redis"] if HAVE_REDIS else []),
]
BACKENDS = ["thread", *PROCESS_BACKENDS]
BOUNDED_BACKENDS = [b for b in BACKENDS if b in ("thread", "queue", "manager", "redis")]
#: A redis channel's lease in the shared suites: a dead sender is noticed this long after.
REDIS_LEASE = 1.0

_names = itertools.count()

#: The folder of the tests' shared helpers (support, children, ...), wherever a test lives.
TESTS = Path(__file__).resolve().parent

#: Generous bound for anything a test waits on: a hang fails the test, it never blocks the run.
WAIT = 20.0


def worker_method(backend: str, method: str = "fork") -> str:
    """``method``, or ``THREAD`` for the thread backend, whose workers are threads."""
    return THREAD if backend == "thread" else method


def server_options(backend: str) -> dict[str, Any]:
    """What a bare backend name needs to open a channel in a test: for redis, the run's server."""
    if backend != "redis":
        return {}
    from redis_server import shared  # needs redis-py: imported only when redis runs

    return {"address": shared().address, "lease": REDIS_LEASE}


def takes_start_method(backend: str) -> bool:
    """Whether ``backend`` takes the option ``context`` (a thread channel refuses it)."""
    return backend != "thread"


def open_for(backend: str, method: str | None = None, **options: object) -> channels.Channel[Any]:
    """Open a channel of ``backend`` whose processes use start method ``method``.

    A redis channel is a fresh one on the run's shared server, under a name no
    other test uses. A thread or redis channel, or any channel whose workers are
    threads (``method`` is ``THREAD``), takes no start method.
    """
    if method is not None and method != THREAD and takes_start_method(backend):
        options["context"] = method
    if backend == "redis":
        options = {**server_options(backend), **options}
        options.setdefault("name", f"suite-{os.getpid()}-{time.monotonic_ns()}-{next(_names)}")
    return channels.open_channel[Any](backend, **cast("channels.ChannelOptions", options))


class Worker(threading.Thread):
    """A thread standing in for a child process: ``join`` and ``exitcode`` as a process has."""

    def __init__(self, target: Callable[..., object], args: tuple[object, ...]) -> None:
        super().__init__(target=self._run, args=(target, args), daemon=True)
        self.exitcode: int | None = None

    def _run(self, target: Callable[..., object], args: tuple[object, ...]) -> None:
        try:
            target(*args)
        except SystemExit as exc:
            self.exitcode = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            self.exitcode = 1
            raise
        else:
            self.exitcode = 0


def start(method: str, target: Callable[..., object], *args: object) -> BaseProcess:
    """Start ``target(*args)`` in a child process of start method ``method``.

    With ``THREAD``, in a thread of this process instead (for the thread backend).
    """
    if method == THREAD:
        worker = Worker(target, args)
        worker.start()
        return cast(BaseProcess, worker)  # joined and read as a process is
    ctx = multiprocessing.get_context(method)
    make = cast("Callable[..., BaseProcess]", ctx.Process)  # type: ignore[attr-defined]
    process = make(target=target, args=args)
    process.start()
    return process


def join(*processes: BaseProcess) -> list[int | None]:
    """Join each process or ``Worker`` (each bounded by WAIT) and return the exit codes."""
    for p in processes:
        p.join(WAIT)
    return [p.exitcode for p in processes]


def drain(receiver: channels.Receiver[Any], timeout: float = WAIT) -> tuple[list[Any], str]:
    """Receive until the channel stops; return the items and the name of what stopped it."""
    items: list[Any] = []
    while True:
        try:
            items.append(receiver.recv(timeout=timeout))
        except channels.ChannelError as exc:
            return items, type(exc).__name__


# Helper processes multiprocessing keeps for the whole run; their children are still checked.
_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def _processes() -> dict[int, tuple[int, str]]:
    """Every live process as pid -> (parent pid, state letter), read from /proc."""
    table: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: split after it.
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), fields[0])
    return table


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def live_descendants(root: int | None = None) -> list[int]:
    """Live (non-zombie) descendants of ``root``, leaving out multiprocessing's own helpers.

    Children of the forkserver are included: a pool's forkserver workers are
    grandchildren of the test process.
    """
    root = os.getpid() if root is None else root
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        if table[pid][1] == "Z":
            continue
        if table[pid][0] == root and any(h in _cmdline(pid) for h in _HELPERS):
            continue
        found.append(pid)
    return found


def wait_no_descendants(timeout: float = 5.0) -> list[int]:
    """Poll until the test process has no live descendants; return those left after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        left = live_descendants()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.02)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"
