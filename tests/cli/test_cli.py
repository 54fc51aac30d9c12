"""The ``channels`` command line: ``backends``, ``bench`` and ``serve``.

The bench tests check that the numbers are well formed, never how fast anything is.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import channels
from channels import _bench, backends
from channels._cli import main as _cli

from support import WAIT

BUILTIN = {"thread", "pipe", "queue", "simplequeue", "manager"}
LOCAL = ["pipe", "queue", "simplequeue"]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m channels ARGS`` as a real process."""
    env = {k: v for k, v in os.environ.items() if k not in ("CHANNELS_URL", "CHANNELS_AUTHKEY")}
    return subprocess.run(
        [sys.executable, "-m", "channels", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_backends_json_lists_builtins_and_features() -> None:
    done = run_cli("backends", "--json")
    assert done.returncode == 0, done.stderr
    entries = {entry["name"]: entry for entry in json.loads(done.stdout)}
    assert set(entries) >= BUILTIN
    for name in LOCAL:
        entry = entries[name]
        assert entry["available"] is True
        assert set(entry["features"]) == {
            "bounded",
            "many_producers",
            "many_consumers",
            "cross_machine",
        }
        assert entry["features"]["cross_machine"] is False
        assert "context" in entry["options"]
    assert set(entries["thread"]["options"]) == {"maxsize", "joinable"}
    assert entries["thread"]["features"]["bounded"] is True
    assert entries["queue"]["features"]["bounded"] is True
    assert entries["queue"]["options"]["maxsize"] == "int"
    assert entries["pipe"]["features"]["bounded"] is False
    assert "maxsize" not in entries["pipe"]["options"]
    manager = entries["manager"]
    assert manager["available"] is ("features" in manager)
    if not manager["available"]:
        assert manager["error"]


def test_backends_table_names_every_builtin() -> None:
    done = run_cli("backends")
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    for column in ("bounded", "many producers", "many consumers", "cross-machine", "options"):
        assert column in header
    assert {row.split()[0] for row in rows if row.strip()} >= BUILTIN


def _assert_sane(side: dict[str, Any], size: int) -> None:
    assert side["msgs_per_s"] > 0
    assert all(rate > 0 for rate in side["rounds_msgs_per_s"])
    assert 0 < side["p50_us"] <= side["p99_us"]
    if size:
        assert side["mb_per_s"] > 0
    else:
        assert side["mb_per_s"] is None


def test_bench_json_gives_sane_numbers() -> None:
    done = run_cli(
        "bench", "--count", "200", "--repeat", "1", "--pings", "20", "--rows", "base", "--json"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["workload"]["count"] == 200
    assert report["start_method"]
    assert report["workload"]["context"] == report["start_method"]  # what ran, never null
    assert "round trip" in report["latency_method"]
    assert [r["backend"] for r in report["results"]] == ["thread", *LOCAL]
    for result in report["results"]:
        assert result["raw_primitive"]
        _assert_sane(result["raw"], 64)
        _assert_sane(result["channel"], 64)
        assert result["ratio"] > 0
    assert report["results"][0]["raw_primitive"].startswith("queue.Queue")
    assert "[8/8]" in done.stderr  # the progress line


def test_bench_table() -> None:
    done = run_cli(
        "bench",
        "--backend",
        "pipe",
        "--count",
        "100",
        "--repeat",
        "1",
        "--pings",
        "5",
        "--rows",
        "base",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("backend"))
    assert "ratio" in header
    assert "p50/p99" in header
    assert any(line.startswith("pipe ") for line in lines)


def test_bench_many_producers_and_consumers() -> None:
    """In process, so that the suite's leak checks cover the bench's own processes."""
    workload = _bench.Workload(count=301, size=0, producers=3, consumers=2, repeat=2, pings=5)
    steps: list[str] = []
    report = _bench.run(["pipe", "queue"], workload=workload, rows=["base"], progress=steps.append)
    assert len(steps) == 8
    for result in report.results:
        assert result.raw is not None
        assert len(result.raw.rounds_msgs_per_s) == 2
        assert len(result.channel.rounds_msgs_per_s) == 2
        assert result.ratio is not None
        assert result.ratio > 0
    assert report.results[0].notes  # the raw pipe needed locks
    table = _bench.format_table(report)
    assert "small int" in table
    assert "note (pipe)" in table


def test_bench_under_spawn() -> None:
    """Everything a run hands its processes must travel to a spawned child."""
    workload = _bench.Workload(
        count=100, producers=2, consumers=2, context="spawn", repeat=1, pings=5
    )
    report = _bench.run(["simplequeue"], workload=workload, rows=["base"])
    assert report.start_method == "spawn"
    (result,) = report.results
    assert result.ratio is not None
    assert result.ratio > 0


def test_bench_spec_with_options() -> None:
    workload = _bench.Workload(count=50, repeat=1, pings=5)
    report = _bench.run(spec="queue://?maxsize=4", workload=workload, rows=["base"])
    (result,) = report.results
    assert result.backend == "queue"
    assert result.spec == "queue://?maxsize=4"
    assert json.loads(json.dumps(report.to_dict()))["results"][0]["ratio"] > 0


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--count", "0"],
        ["bench", "--count", "many"],
        ["bench", "--size", "-1"],
        ["bench", "--size", "big"],
        ["bench", "--producers", "0"],
        ["bench", "--repeat", "0"],
        ["bench", "--context", "teleport"],
        ["bench", "--backend", "carrier-pigeon"],
        ["bench", "--spec", "pipe://?maxsize=3"],
        ["bench", "--spec", "queue://?colour=blue"],
        ["bench", "--backend", "pipe", "--spec", "queue"],
        ["bench", "--rows", "sideways"],
        ["bench", "--batch", "0"],
        ["bench", "--large-size", "0"],
        ["serve", "--port", "70000"],
        ["frobnicate"],
        [],
    ],
)
def test_bad_options_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "error" in err or "usage" in err


@pytest.mark.parametrize("command", ["bench", "backends", "completion bash"])
def test_an_unknown_option_shows_the_commands_own_usage(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli.main([*command.split(), "--bogus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: channels {command.split(maxsplit=1)[0]} "), err
    assert "unrecognized arguments: --bogus" in err


def test_bad_option_exits_2_from_a_real_process() -> None:
    done = run_cli("bench", "--count", "-5", timeout=30)
    assert done.returncode == 2
    assert "--count" in done.stderr


@pytest.mark.parametrize(
    ("text", "size"), [("64", 64), ("int", 0), ("0", 0), ("4k", 4096), ("1M", 1 << 20)]
)
def test_size_values(text: str, size: int) -> None:
    args = _cli._parser().parse_args(["bench", "--size", text])
    assert args.size == size


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["bench", "--help"]) == 0
    assert "--producers" in capsys.readouterr().out


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1", "::1"])
def test_serve_refuses_to_start_without_a_key(
    host: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(_cli.AUTHKEY_ENV, raising=False)
    assert _cli.main(["serve", "--host", host]) == 2
    err = capsys.readouterr().err
    assert "without an authkey" in err
    assert _cli.AUTHKEY_ENV in err
    assert "--authkey-file" in err


def test_serve_refuses_a_key_file_it_cannot_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(_cli.AUTHKEY_ENV, "k" * 40)  # the file, when given, wins
    short, empty = tmp_path / "short", tmp_path / "empty"
    short.write_text("hunter2-short\n")
    empty.write_text("\n")
    for path, problem in [
        (tmp_path / "missing", "cannot read"),
        (empty, "is empty"),
        (short, "13 bytes long"),
    ]:
        assert _cli.main(["serve", "--authkey-file", str(path)]) == 2
        err = capsys.readouterr().err
        assert problem in err
        assert "hunter2" not in err


def _read_line(server: subprocess.Popen[str]) -> str:
    assert server.stdout is not None
    ready, _, _ = select.select([server.stdout], [], [], WAIT)
    assert ready, "channels serve printed nothing"
    return server.stdout.readline()


def test_serve_runs_until_terminated() -> None:
    env = {**os.environ, _cli.AUTHKEY_ENV: "k" * 40}
    with subprocess.Popen(
        [sys.executable, "-m", "channels", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as server:
        try:
            line = _read_line(server)
            assert line.startswith("channels: serving on 127.0.0.1:"), line
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=WAIT) == 0
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()


@pytest.mark.skipif(not socket.has_ipv6, reason="this Python has no IPv6")
def test_serve_on_ipv6_with_a_key_file_logs_refused_logins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = secrets.token_hex(24)
    key_file = tmp_path / "key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    monkeypatch.delenv(_cli.AUTHKEY_ENV, raising=False)
    command = ["serve", "--host", "::1", "--authkey-file", str(key_file), "-v"]
    with subprocess.Popen(
        [sys.executable, "-m", "channels", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as server:
        try:
            line = _read_line(server)
            assert line.startswith("channels: serving on [::1]:"), line
            spec = f"manager://{line.split()[-1]}/jobs"
            with channels.open_channel[int](spec, authkey=key) as ch:
                ch.send(7)
                assert ch.recv(timeout=WAIT) == 7
            with pytest.raises(channels.AuthkeyMissing):
                channels.open_channel[int](spec)
            with pytest.raises(channels.AuthkeyRejected):
                channels.open_channel[int](spec, authkey="x" * 48)
            server.send_signal(signal.SIGTERM)
            out, err = server.communicate(timeout=WAIT)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    assert server.returncode == 0, err
    refusals = [entry for entry in err.splitlines() if " WARNING " in entry]
    assert len(refusals) == 2, err
    assert all("refused a connection from [::1]:" in entry for entry in refusals)
    assert " INFO " in err  # -v shows more than warnings
    assert "Traceback" not in err
    assert key not in out + err


COMPLETIONS: list[tuple[str, set[str]]] = [
    (
        "channels ",
        {"bench", "backends", "serve", "worker", "inspect", "completion"}
        | {"-h", "--help", "--version"},
    ),
    ("channels b", {"bench", "backends"}),
    ("channels bench --co", {"--count", "--consumers", "--context"}),
    ("channels bench --context f", {"fork", "forkserver"}),
    ("channels bench --backend ", set(backends())),
    ("channels bench --size ", set()),
    ("channels bench --size 4k --js", {"--json"}),
    ("channels backends --", {"--help", "--json"}),
    ("channels completion ", {"-h", "--help", "bash"}),
    (
        "channels worker --",
        {"--help", "--inbox", "--outbox", "--workers", "--max-tries", "--dead-letter", "--batch"},
    ),
    ("channels worker jobs:f --inbox ", set()),
    ("channels inspect --", {"--help", "--json"}),
]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completion_script_completes_commands_options_and_values() -> None:
    script = run_cli("completion", "bash")
    assert script.returncode == 0, script.stderr
    lines = [script.stdout]
    for typed, _ in COMPLETIONS:
        # As bash calls it: the words typed so far, the last one being completed.
        words = " ".join(shlex.quote(w) for w in typed.split(" "))
        lines.append(f"COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))")
        lines.append('COMPREPLY=(); _channels_complete; echo "${COMPREPLY[*]}"')
    lines.append("complete -p channels")
    done = subprocess.run(
        ["bash", "--norc", "--noprofile"],
        input="\n".join(lines),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    *offered, registered = done.stdout.splitlines()
    assert registered == "complete -F _channels_complete channels"
    for (typed, expected), got in zip(COMPLETIONS, offered, strict=True):
        assert set(got.split()) == expected, typed
