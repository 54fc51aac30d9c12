"""Local channels when the disk is full or the process is out of file descriptors."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import channels

from support import LOCAL_BACKENDS, WAIT, drain, join, open_for, start


@pytest.fixture
def small_disk() -> Iterator[str]:
    """A 2 MiB tmpfs of the test's own, unmounted afterwards."""
    folder = tempfile.mkdtemp(prefix="channels-small-disk-")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", folder],
        capture_output=True,
        check=False,
    )
    if done.returncode:
        os.rmdir(folder)
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", folder], check=False)
        os.rmdir(folder)


def _fill(folder: str, leave: int) -> None:
    """Fill ``folder``'s file system until about ``leave`` bytes are free."""
    with open(os.path.join(folder, "filler"), "wb") as f, contextlib.suppress(OSError):
        while os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize > leave:
            f.write(b"\0" * 4096)
            f.flush()


def _send_until_full(ch: channels.Channel[bytes]) -> tuple[list[bytes], Exception | None]:
    """Send 5 kB items (each larger than a pipe frame) until ``send`` raises."""
    sent: list[bytes] = []
    for i in range(200):
        item = bytes([i]) * 5_000
        try:
            ch.send(item)
        except channels.ChannelError as exc:
            return sent, exc
        sent.append(item)
    return sent, None


def _recv_all(receiver: channels.Receiver[bytes]) -> None:
    for _ in receiver:
        pass


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_a_full_disk_is_an_error_at_send_and_every_sent_item_arrives_intact(
    backend: str, small_disk: str
) -> None:
    ch = open_for(backend, None, spill_dir=small_disk)
    _fill(small_disk, 40_000)
    sent, error = _send_until_full(ch)
    assert isinstance(error, channels.ChannelError)
    assert not isinstance(error, channels.ChannelBroken)
    assert "no space is left" in str(error)
    assert sent, "some items fit before the disk was full"
    got = [ch.recv(timeout=WAIT) for _ in sent]
    assert got == sent  # every item whose send returned, intact and in order
    os.remove(os.path.join(small_disk, "filler"))
    ch.send(b"after")  # room again: the channel goes on
    ch.close()
    assert drain(ch) == ([b"after"], "EndOfChannel")


def test_a_receiver_on_a_full_disk_is_not_killed_by_sigbus(small_disk: str) -> None:
    ch = open_for("queue", "fork", spill_dir=small_disk)
    _fill(small_disk, 0)
    receiver = start("fork", _recv_all, ch.receiver)
    with pytest.raises(channels.ChannelError, match="no space"):
        ch.send(b"y" * 100_000)
    ch.send(b"small")  # through the pipe: no disk needed
    ch.close()
    assert join(receiver) == [0]


def test_opening_on_a_full_disk_is_a_channel_error_that_leaves_nothing_open(
    small_disk: str,
) -> None:
    _fill(small_disk, 0)
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(channels.ChannelError, match="no space"):
        open_for("queue", None, spill_dir=small_disk)
    assert set(os.listdir("/proc/self/fd")) == before


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_running_out_of_descriptors_is_a_channel_error_that_leaks_none(backend: str) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = set(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(int(fd) for fd in before) + 8, hard))
    fillers: list[int] = []
    try:
        with contextlib.suppress(OSError):
            while True:  # take every free descriptor ...
                fillers.append(os.open(os.devnull, os.O_RDONLY))
        os.close(fillers.pop())  # ... but one: a channel needs three or more
        during = set(os.listdir("/proc/self/fd"))
        with pytest.raises(channels.ChannelError, match="too many open files"):
            open_for(backend, None, **({"maxsize": 2} if backend == "queue" else {}))
        assert set(os.listdir("/proc/self/fd")) == during
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


SPAWN_MISTAKE = """\
import multiprocessing
import channels


def produce(tx: channels.Sender[int]) -> None:
    with tx:
        tx.send(1)


# No `if __name__ == "__main__":`: under spawn the child runs this again and dies at start.
ctx = multiprocessing.get_context("spawn")
ch = channels.open_channel[int]("queue", context="spawn")
child = ctx.Process(target=produce, args=(ch.clone(),))
child.start()
ch.close()
try:
    print("got", ch.recv(timeout=20))
except channels.ChannelBroken as exc:
    print("broken:", exc)
child.join(20)
"""


def test_the_spawn_mistake_breaks_the_channel_instead_of_hanging(tmp_path: Path) -> None:
    script = tmp_path / "mistake.py"
    script.write_text(SPAWN_MISTAKE)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert "broken: every process that sent on an open sender handle has died" in done.stdout
    assert time.monotonic() - started < 15
