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
from channels import EndOfChannel
from channels._cli import main as _cli

from redis_server import SKIP_REASON, RedisServer, free_port, shared
from support import WAIT, drain

needs_redis = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")

JOBS = textwrap.dedent(
    """
    import os
    import signal
    import time

    def tagged_square(x):
        time.sleep(0.005)
        return (x, x * x, os.environ["MACHINE"])

    def fail_on_three(x):
        if x == 3:
            raise ValueError("three is refused")
        return x

    def killed_once_by_37(x):
        # The first worker to run 37 is SIGKILLed; a file remembers that it happened.
        if x == 37:
            try:
                fd = os.open(os.path.join(os.environ["MARKS"], "37"), os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.002)
        return x * x

    def thirteen_kills(x):
        # 13 makes every worker that runs it exit at once; each try leaves a line.
        if x == 13:
            with open(os.path.join(os.environ["MARKS"], "tries"), "a") as log:
                log.write(f"{os.getpid()}\\n")
            os._exit(3)
        return x

    def slow(x):
        time.sleep(0.01)
        return x

    def logged_killed_once_by_37(x):
        # Each start is logged; the first worker to run 37 is SIGKILLed.
        with open(os.path.join(os.environ["MARKS"], "starts"), "a") as log:
            log.write(f"{x}\\n")
        return killed_once_by_37(x)
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
    folder: Path,
    target: str,
    inbox: str,
    outbox: str,
    *,
    machine: str,
    workers: int = 2,
    options: tuple[str, ...] = (),
) -> subprocess.Popen[str]:
    """``channels worker`` in its own process, started in ``folder`` (where ``jobs`` is)."""
    env = {**os.environ, "MACHINE": machine, "MARKS": str(folder)}
    options = ("--inbox", inbox, "--outbox", outbox, "--workers", str(workers), *options)
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


@needs_redis
def test_a_joinable_inbox_is_joined_once_every_result_is_out(jobs: Path) -> None:
    server = shared()
    inbox, outbox = server.url(unique("in")), server.url(unique("out"))
    feed = channels.open_sender[int](inbox + "?joinable=true")
    feed.send_many(range(50))
    results = channels.open_receiver[tuple[int, int, str]](outbox)
    worker = start_worker(jobs, "jobs:tagged_square", inbox, outbox, machine="a")
    try:
        feed.join(timeout=WAIT)  # each item is marked done once its result was sent
        assert len(results.recv_many(100, timeout=WAIT)) + results.stats().waiting == 50
        feed.close()
        code, err = finish(worker)
    finally:
        worker.kill()
        worker.communicate(timeout=WAIT)
    assert code == 0, err


# -- crashes ------------------------------------------------------------------------------


@needs_redis
def test_a_worker_killed_mid_task_has_its_item_run_again_and_the_stream_goes_on(
    jobs: Path,
) -> None:
    server = shared()
    inbox, outbox = server.url(unique("in")), server.url(unique("out"))
    with channels.open_sender[int](inbox) as feed:
        feed.send_many(range(150))
    results = channels.open_receiver[int](outbox)
    # One worker process: nothing else could take over the item its death left.
    worker = start_worker(jobs, "jobs:killed_once_by_37", inbox, outbox, machine="a", workers=1)
    try:
        got, stop = drain(results)
        code, err = finish(worker)
    finally:
        worker.kill()
        worker.communicate(timeout=WAIT)
    assert (jobs / "37").exists()  # the worker was killed
    assert stop == "EndOfChannel", err
    assert sorted(got) == [x * x for x in range(150)], err  # every item, once
    assert code == 0, err
    assert "was killed by SIGKILL while running item 37; running it again (try 2 of 3)" in err
    assert "150 item(s) done here, 1 run again after a crash" in err


@needs_redis
def test_a_worker_killed_mid_batch_reruns_only_what_has_no_result(jobs: Path) -> None:
    server = shared()
    inbox, outbox = server.url(unique("in")), server.url(unique("out"))
    with channels.open_sender[int](inbox) as feed:
        feed.send_many(range(200))
    results = channels.open_receiver[int](outbox)
    target, options = "jobs:logged_killed_once_by_37", ("--batch", "16")
    worker = start_worker(jobs, target, inbox, outbox, machine="a", workers=1, options=options)
    try:
        got, stop = drain(results)
        code, err = finish(worker)
    finally:
        worker.kill()
        worker.communicate(timeout=WAIT)
    assert (stop, code) == ("EndOfChannel", 0), err
    assert sorted(got) == [x * x for x in range(200)], err  # every result, once
    assert "while running item 37; running it again (try 2 of 3)" in err
    starts: dict[int, int] = {}
    for line in (jobs / "starts").read_text().split():
        starts[int(line)] = starts.get(int(line), 0) + 1
    assert set(starts) == set(range(200))
    # Only 37 and the items before it in its batch (at most 15) ran twice: their results
    # died with the worker. The items after it had not started; the other batches were sent.
    twice = {x for x, n in starts.items() if n > 1}
    assert 37 in twice, starts
    assert twice <= set(range(37 - 15, 38)), twice
    assert max(starts.values()) == 2


@needs_redis
def test_an_item_that_kills_every_worker_goes_to_the_dead_letter_channel(jobs: Path) -> None:
    server = shared()
    inbox, outbox, dead = (server.url(unique(name)) for name in ("in", "out", "dead"))
    with channels.open_sender[int](inbox) as feed:
        feed.send_many(range(40))
    results = channels.open_receiver[int](outbox)
    letters = channels.open_receiver[channels.DeadLetter[int]](dead)
    options = ("--max-tries", "2", "--dead-letter", dead)
    worker = start_worker(jobs, "jobs:thirteen_kills", inbox, outbox, machine="a", options=options)
    try:
        got, stop = drain(results)
        code, err = finish(worker)
    finally:
        worker.kill()
        worker.communicate(timeout=WAIT)
    assert stop == "EndOfChannel", err  # the stream went on, and ended cleanly
    assert sorted(got) == [x for x in range(40) if x != 13], err
    assert code == 0, err
    assert len((jobs / "tries").read_text().split()) == 2  # started twice, no more
    given_up, stop = drain(letters)
    assert stop == "EndOfChannel"
    assert len(given_up) == 1
    letter: channels.DeadLetter[int] = given_up[0]
    assert isinstance(letter, channels.DeadLetter)
    assert (letter.item, letter.tries, letter.function) == (13, 2, "jobs:thirteen_kills")
    assert letter.cause.startswith("worker ")
    assert letter.cause.endswith("exited with code 3")
    assert "1 dead-lettered" in err


@needs_redis
def test_a_failing_function_goes_to_the_dead_letter_channel_with_its_error(jobs: Path) -> None:
    server = shared()
    inbox, outbox, dead = (server.url(unique(name)) for name in ("in", "out", "dead"))
    with channels.open_sender[int](inbox) as feed:
        feed.send_many(range(10))
    results = channels.open_receiver[int](outbox)
    letters = channels.open_receiver[channels.DeadLetter[int]](dead)
    options = ("--dead-letter", dead)
    worker = start_worker(jobs, "jobs:fail_on_three", inbox, outbox, machine="a", options=options)
    code, err = finish(worker)
    assert code == 0, err
    got, stop = drain(results)
    assert (sorted(got), stop) == ([0, 1, 2, 4, 5, 6, 7, 8, 9], "EndOfChannel")
    given_up, _ = drain(letters)
    assert [(d.item, d.tries, d.cause) for d in given_up] == [
        (3, 1, "ValueError: three is refused")
    ]


@needs_redis
def test_without_a_dead_letter_channel_such_an_item_breaks_the_outbox(jobs: Path) -> None:
    server = shared()
    inbox = server.url(unique("in")) + "?lease=1"
    outbox = server.url(unique("out")) + "?lease=1"
    with channels.open_sender[int](inbox) as feed:
        feed.send_many(range(40))
    results = channels.open_receiver[int](outbox)
    worker = start_worker(jobs, "jobs:thirteen_kills", inbox, outbox, machine="a", workers=1)
    try:
        got, stop = drain(results)
        code, err = finish(worker)
    finally:
        worker.kill()
        worker.communicate(timeout=WAIT)
    assert stop == "ChannelBroken", err  # never a short stream that looks whole
    with pytest.raises(channels.ChannelBroken, match="item 13 killed 3 worker"):
        results.recv(timeout=WAIT)  # and its readers learn which item it was
    results.close()
    assert 13 not in got
    assert code == 1, err
    assert "item 13 killed 3 worker(s) (--max-tries 3" in err
    assert "there is no --dead-letter channel" in err
    # The item was never acknowledged: it is back in the inbox for another worker.
    left, _ = drain(channels.open_receiver[int](inbox), timeout=5)
    assert 13 in left
    assert set(got) | set(left) == set(range(40))


@needs_redis
def test_a_lost_machine_breaks_the_outbox_within_a_lease_and_loses_no_item(jobs: Path) -> None:
    lease = 1.0
    server = shared()
    inbox = server.url(unique("in")) + f"?lease={lease:g}"
    outbox = server.url(unique("out")) + f"?lease={lease:g}"
    feed = channels.open_sender[int](inbox)
    feed.send_many(range(2000))
    results = channels.open_receiver[int](outbox)
    worker = start_worker(jobs, "jobs:slow", inbox, outbox, machine="a")
    try:
        first = results.recv_many(10, timeout=WAIT)
        worker.kill()  # SIGKILL: the machine is gone, its workers with it
        killed = time.monotonic()
        worker.communicate(timeout=WAIT)
        done, stop = drain(results)
        took = time.monotonic() - killed
    finally:
        worker.kill()
        worker.communicate(timeout=WAIT)
    assert stop == "ChannelBroken"
    # Its lease lapses within one term, and readers look again every quarter of one.
    assert took < 3 * lease, took
    feed.close()
    left, stop = drain(channels.open_receiver[int](inbox), timeout=5)
    assert stop == "EndOfChannel"
    assert set(first) | set(done) | set(left) == set(range(2000))  # at least once


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
        (["worker", "json:dumps", "--inbox", "redis://h:1/a", "--outbox", "redis://h:1/b",
          "--batch", "0"], "at least 1"),
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
