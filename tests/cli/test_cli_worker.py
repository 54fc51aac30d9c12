"""``channels worker`` and ``channels inspect`` against a real redis-server.

Each worker runs as its own ``python -m channels`` process, as it would on its
own machine; the function it runs comes from a module written for the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import channels
from channels import EndOfChannel, _cli

from redis_server import SKIP_REASON, RedisServer, free_port, shared
from support import WAIT, drain

needs_redis = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")

JOBS = textwrap.dedent(
    """
    import os
    import time

    def tagged_square(x):
        time.sleep(0.005)
        return (x, x * x, os.environ["MACHINE"])

    def fail_on_three(x):
        if x == 3:
            raise ValueError("three is refused")
        return x
    """
)


@pytest.fixture
def jobs(tmp_path: Path) -> Path:
    """A folder holding the module ``jobs`` the workers import."""
    (tmp_path / "jobs.py").write_text(JOBS)
    return tmp_path


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{time.monotonic_ns()}"


def start_worker(
    folder: Path, target: str, inbox: str, outbox: str, *, machine: str, workers: int = 2
) -> subprocess.Popen[str]:
    """``channels worker`` in its own process, started in ``folder`` (where ``jobs`` is)."""
    env = {**os.environ, "MACHINE": machine}
    options = ["--inbox", inbox, "--outbox", outbox, "--workers", str(workers)]
    return subprocess.Popen(
        [sys.executable, "-m", "channels", "worker", target, *options],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(worker: subprocess.Popen[str]) -> tuple[int, str]:
    """Wait for a worker process; its exit code and stderr."""
    try:
        _, err = worker.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        worker.kill()
        _, err = worker.communicate(timeout=WAIT)
        raise AssertionError(f"the worker did not finish:\n{err}") from None
    return worker.returncode, err


@needs_redis
def test_two_machines_share_the_work_and_the_outbox_ends_after_both(jobs: Path) -> None:
    server = shared()
    inbox, outbox = server.url(unique("in")), server.url(unique("out"))
    feed = channels.open_sender[int](inbox)
    results = channels.open_receiver[tuple[int, int, str]](outbox)
    machines = [
        start_worker(jobs, "jobs:tagged_square", inbox, outbox, machine=name) for name in ("a", "b")
    ]
    try:
        feed.send_many(range(300))
        got: list[tuple[int, int, str]] = []
        # The inbox ends only once both machines have sent something: until a machine has
        # opened its outbox handles, the outbox could end without it.
        deadline = time.monotonic() + WAIT
        while {machine for _, _, machine in got} != {"a", "b"}:
            assert time.monotonic() < deadline, f"not both machines worked: {len(got)} results"
            got += results.recv_many(100, timeout=WAIT)
        feed.send_many(range(300, 600))
        feed.close()
        rest, stop = drain(results)
        got += rest
        assert stop == "EndOfChannel"
        outcomes = [finish(machine) for machine in machines]
    finally:
        for machine in machines:
            machine.kill()
            machine.communicate(timeout=WAIT)
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    assert sorted(x for x, _, _ in got) == list(range(600))  # every result, once
    assert all(square == x * x for x, square, _ in got)
    counts = {name: sum(1 for *_, m in got if m == name) for name in ("a", "b")}
    assert min(counts.values()) > 0, counts
    for (_, err), name in zip(outcomes, ("a", "b"), strict=True):
        assert f"the inbox ended; {counts[name]} item(s) done here" in err, err
    stats = results.stats()
    assert stats.ended
    assert stats.senders == 0  # every worker on every machine closed its handles
    assert not stats.broken


@needs_redis
def test_sigterm_stops_cleanly_and_the_rest_stays_in_the_inbox(jobs: Path) -> None:
    server = shared()
    inbox = server.url(unique("in")) + "?lease=1"
    outbox = server.url(unique("out"))
    feed = channels.open_sender[int](inbox)
    feed.send_many(range(2000))
    results = channels.open_receiver[tuple[int, int, str]](outbox)
    worker = start_worker(jobs, "jobs:tagged_square", inbox, outbox, machine="a")
    try:
        first = results.recv_many(10, timeout=WAIT)
        worker.send_signal(signal.SIGTERM)
        code, err = finish(worker)
    finally:
        worker.kill()
        worker.communicate(timeout=WAIT)
    assert code == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err, err
    assert "Traceback" not in err, err
    done, stop = drain(results)
    assert stop == "EndOfChannel"  # its outbox handles were closed, not abandoned
    finished = [x for x, _, _ in [*first, *done]]
    assert len(finished) == len(set(finished))
    feed.close()
    left, stop = drain(channels.open_receiver[int](inbox))
    assert stop == "EndOfChannel"
    # Nothing lost: each item was finished, or is back in the inbox (a worker killed in the
    # middle of one leaves it to be received again: at least once).
    assert set(finished) | set(left) == set(range(2000))
    assert len(left) < 2000


@needs_redis
def test_a_failing_function_fails_the_worker_with_its_traceback(jobs: Path) -> None:
    server = shared()
    inbox, outbox = server.url(unique("in")), server.url(unique("out"))
    with channels.open_sender[int](inbox) as feed:
        feed.send_many(range(10))
    worker = start_worker(jobs, "jobs:fail_on_three", inbox, outbox, machine="a", workers=1)
    code, err = finish(worker)
    assert code == 1, err
    assert "ValueError: three is refused" in err
    assert "fail_on_three" in err  # the worker's traceback comes along


def inspect(url: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "channels", "inspect", url, *options],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )


@needs_redis
def test_inspect_prints_the_stats_as_a_table_and_as_json() -> None:
    server = shared()
    name = unique("look")
    ch = channels.open_channel[int](server.url(name))
    ch.send_many([1, 2, 3])
    assert ch.recv(timeout=WAIT) == 1
    try:
        as_json = inspect(server.url(name), "--json")
        table = inspect(server.url(name))
    finally:
        ch.close()
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {
        "channel": server.url(name),
        "waiting": 2,
        "senders": 1,
        "receivers": 1,
        "sent": 3,
        "received": 1,
        "unfinished": 0,
        "ended": False,
        "broken": False,
    }
    assert table.returncode == 0, table.stderr
    rows = dict(line.split(None, 1) for line in table.stdout.splitlines())
    assert rows["waiting"] == "2"
    assert rows["sent"] == "3"
    assert rows["ended"] == "no"
    assert list(ch) == [2, 3]


@needs_redis
def test_inspect_neither_starts_nor_joins_a_channel() -> None:
    private = RedisServer().start()  # its own server, so that no other test's keys are there
    try:
        done = inspect(private.url("nothing-here"), "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["sent"] == 0
        assert private.keys() == []
    finally:
        private.remove()


def test_inspect_fails_with_exit_1_when_the_server_is_unreachable() -> None:
    done = inspect(f"redis://127.0.0.1:{free_port()}/x?reconnect=0.3")
    assert done.returncode == 1
    assert "unreachable" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["worker", "jobs:f", "--inbox", "redis://h:1/in"], "--outbox"),
        (["worker", "jobs:f", "--outbox", "redis://h:1/out"], "--inbox"),
        (["worker", "no_colon", "--inbox", "redis://h:1/a", "--outbox", "redis://h:1/b"],
         "MODULE:FUNCTION"),
        (["worker", "no_such_module_here:f", "--inbox", "redis://h:1/a",
          "--outbox", "redis://h:1/b"], "cannot import module 'no_such_module_here'"),
        (["worker", "json:no_such_function", "--inbox", "redis://h:1/a",
          "--outbox", "redis://h:1/b"], "has no 'no_such_function'"),
        (["worker", "json:__doc__", "--inbox", "redis://h:1/a", "--outbox", "redis://h:1/b"],
         "not a function"),
        (["worker", "json:dumps", "--inbox", "queue", "--outbox", "redis://h:1/b"],
         "--inbox takes the URL of a named channel"),
        (["worker", "json:dumps", "--inbox", "redis://h:1/a", "--outbox", "redis://h:1"],
         "--outbox takes the URL of a named channel"),
        (["worker", "json:dumps", "--inbox", "redis://h:1/a", "--outbox", "redis://h:1/b",
          "--workers", "0"], "at least 1"),
        (["inspect"], "URL"),
        (["inspect", "pipe"], "inspect takes the URL of a named channel"),
        (["inspect", "nonsense://x/y"], "nonsense"),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2_and_say_what_is_wrong(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err


@needs_redis
def test_an_outbox_that_already_ended_fails_the_worker_before_it_starts(jobs: Path) -> None:
    server = shared()
    inbox, outbox = server.url(unique("in")), server.url(unique("out"))
    channels.open_sender[int](outbox).close()  # the outbox has ended
    worker = start_worker(jobs, "jobs:tagged_square", inbox, outbox, machine="a")
    code, err = finish(worker)
    assert code == 1, err
    assert "has ended" in err
    assert "Traceback" not in err
    with pytest.raises(EndOfChannel):
        channels.open_receiver[int](outbox).recv(timeout=WAIT)
