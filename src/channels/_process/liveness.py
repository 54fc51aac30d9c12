"""Whether a process is still alive, told apart from a zombie or a recycled pid."""

from __future__ import annotations

import os

__all__ = ["host_key", "pid_alive", "process_stamp", "started_pid", "this_process"]


def process_stamp(pid: int) -> int:
    """Return the start time of ``pid`` in clock ticks since boot, or 0 where unknown.

    Together with the pid it names one process for good: a pid the kernel hands
    out again later comes with another start time.
    """
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else 0


def pid_alive(pid: int, stamp: int) -> bool:
    """True if the process ``pid`` started at ``stamp`` runs; a zombie counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _stat_fields(pid)
    if fields is None:
        return True
    state = fields[0]
    if state in ("Z", "X", "x"):
        return False
    return not stamp or int(fields[19]) == stamp


def started_pid(popen: object) -> int:
    """The pid of a process multiprocessing is starting (its ``Popen``): 0 until it has one."""
    pid = getattr(popen, "pid", None)
    return pid if isinstance(pid, int) and not isinstance(pid, bool) else 0


def host_key() -> str:
    """A name for this kernel and pid namespace; empty where unknown (off Linux).

    Where two processes' keys are equal and not empty, a pid means the same
    process to both, so one can tell whether the other's child is alive.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        namespace = os.stat("/proc/self/ns/pid")
    except OSError:
        return ""
    return f"{boot}/{namespace.st_dev}:{namespace.st_ino}" if boot else ""


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name, or None off Linux."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may itself hold spaces or ')'.
    return raw[raw.rindex(b")") + 2 :].decode("ascii", "replace").split()


class _ThisProcess:
    """This process's identity, refreshed in a forked child (os.getpid is a system call)."""

    __slots__ = ("pid", "stamp")

    def __init__(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        self.pid = os.getpid()
        self.stamp = process_stamp(self.pid)


this_process = _ThisProcess()
os.register_at_fork(after_in_child=this_process.refresh)
