"""Functions the pool tests run in worker processes.

They live in an importable module because the spawn and forkserver start
methods send functions by reference: a function defined inside a test cannot
reach a worker.
"""

from __future__ import annotations

import ctypes
import dataclasses
import faulthandler
import os
import platform
import signal
import sys
import threading
import time

from channels import Pool, Sender


def square(x: int) -> int:
    return x * x


def add(a: int, b: int) -> int:
    return a + b


def identity(x: object) -> object:
    return x


def size_of(data: bytes) -> int:
    return len(data)


def pid_of(_: object = None) -> int:
    return os.getpid()


def sleep_then(seconds: float, value: int = 0) -> int:
    time.sleep(seconds)
    return value


def slow_square(x: int) -> int:
    time.sleep(0.01)
    return x * x


def fail_on(x: int, bad: int = 3) -> int:
    if x == bad:
        raise ValueError(f"bad input {x}")
    return x


class CustomError(Exception):
    """An exception whose constructor takes two arguments."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


def raise_custom(code: int) -> None:
    raise CustomError(code, "custom detail")


class UnpicklableError(Exception):
    """An exception that cannot be pickled: it holds a lock."""

    def __init__(self) -> None:
        super().__init__("holds a lock")
        self.lock = threading.Lock()


def raise_unpicklable(_: object = None) -> None:
    raise UnpicklableError


def exit_on(x: int, bad: int = 3) -> int:
    """Kill the worker with ``os._exit`` on the input ``bad``."""
    if x == bad:
        os._exit(7)
    return x


def kill_self(x: int, bad: int = 3) -> int:
    """SIGKILL the worker on the input ``bad``."""
    if x == bad:
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)
    return x


def unpicklable_result(_: object = None) -> object:
    return threading.Lock()


def return_lambda(x: int) -> object:
    return lambda: x


def init_fail() -> None:
    raise RuntimeError("initializer refuses")


_initialized: list[str] = []


def init_set(value: str) -> None:
    _initialized.append(value)


def get_initialized(_: object = None) -> list[str]:
    return list(_initialized)


def hang(_: object = None) -> None:
    time.sleep(3600)


def double(x: int) -> int:
    return 2 * x


def die_on(x: int, how: str, bad: int = 3) -> int:
    """Return ``x``, except for ``bad``: die by ``exit`` (os._exit(7)), ``kill`` or ``segfault``."""
    if x == bad:
        if how == "exit":
            os._exit(7)
        elif how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(10)
        else:
            faulthandler.disable()  # keep the crash report out of the test run's output
            ctypes.string_at(0)
    return x


def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@dataclasses.dataclass(frozen=True)
class FrozenError(Exception):
    """An exception whose class is a frozen dataclass: its attributes cannot be assigned."""


def raise_frozen(_: object = None) -> None:
    raise FrozenError


class ExitOnUnpickle:
    """Pickles fine, but unpickling it raises ``SystemExit``."""

    def __reduce__(self) -> tuple[object, ...]:
        return (sys.exit, (0,))


class ExitOnPickle:
    """Pickling it raises ``SystemExit``."""

    def __reduce__(self) -> tuple[object, ...]:
        raise SystemExit(0)


def exit_on_unpickle(_: object = None) -> object:
    return ExitOnUnpickle()


def inner_pool_squares(n: int) -> list[int]:
    """Run a fork pool inside this (pool worker) process."""
    with Pool(2, context="fork") as pool:
        return pool.map(square, range(n), timeout=20)


def init_send(tx: Sender[int]) -> None:
    tx.send(os.getpid())


#: The number of the ``write`` system call, where the tests know it.
WRITE_SYSCALL = {"x86_64": 1, "aarch64": 64}.get(platform.machine())


def stopped_mid_result(size: int) -> bytes:
    """Return ``size`` bytes, and stop this process (SIGSTOP) while it writes them back.

    A thread waits until this thread is blocked writing (the pipe is full: the
    parent holds part of the answer), then stops the whole process.
    """
    status = f"/proc/self/task/{threading.get_native_id()}/syscall"

    def stop_when_writing() -> None:
        while True:
            with open(status) as now:
                if now.read().split()[0] == str(WRITE_SYSCALL):
                    break
            time.sleep(0.001)
        os.kill(os.getpid(), signal.SIGSTOP)

    threading.Thread(target=stop_when_writing, daemon=True).start()
    return b"x" * size


def note_sigterm_then_hang(folder: str) -> None:
    """Hang; a SIGTERM leaves a file named ``sigterm`` in ``folder`` (and is otherwise ignored)."""

    def noted(signum: int, frame: object) -> None:
        with open(os.path.join(folder, "sigterm"), "w"):
            pass

    signal.signal(signal.SIGTERM, noted)
    while True:
        time.sleep(0.05)


def killed_once_on(folder: str, x: int, bad: int = 3) -> int:
    """SIGKILL the worker the first time it meets ``bad`` (a file in ``folder`` remembers)."""
    if x == bad:
        try:
            fd = os.open(os.path.join(folder, str(bad)), os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            pass
        else:
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(10)
    return x


def logged_exit_on(folder: str, x: int, bad: int = 3, kills: int = 1) -> int:
    """Log each start of ``x`` in ``folder``; ``os._exit`` on ``bad`` its first ``kills`` starts."""
    path = os.path.join(folder, "starts")
    with open(path, "a") as log:
        log.write(f"{x}\n")
    if x == bad:
        with open(path) as log:
            if log.read().split().count(str(bad)) <= kills:
                os._exit(7)
    return x


def logged_raise_on(folder: str, x: int, bad: int = 3) -> int:
    """Log each start of ``x`` in ``folder``; raise ``ValueError`` on ``bad``."""
    with open(os.path.join(folder, "starts"), "a") as log:
        log.write(f"{x}\n")
    if x == bad:
        raise ValueError(f"{bad} is refused")
    return x
