"""``channels bench``'s extra rows: batches, large items, 2 producers to 2 consumers.

These check that every row runs and that the report is well formed, with tiny
counts; never how fast anything is. faster_fifo and numpy are optional: each
test holds with or without them, and two tests hide them to check the fallback.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from channels import ConfigError, _bench
from channels._bench import runner, workers

HAS_FIFO = importlib.util.find_spec("faster_fifo") is not None
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
TINY = _bench.Workload(
    count=301, size=16, repeat=2, pings=5, batch=7, batch_count=301, large_size=64 << 10
)


def _sane(rate: dict[str, Any] | None, rounds: int) -> None:
    assert rate is not None
    assert rate["what"]
    assert rate["msgs_per_s"] > 0
    assert len(rate["rounds_msgs_per_s"]) == rounds
    assert all(r > 0 for r in rate["rounds_msgs_per_s"])


def test_every_row_as_json_from_the_command() -> None:
    env = {k: v for k, v in os.environ.items() if k != "CHANNELS_URL"}
    argv = "bench --backend pipe queue --count 200 --repeat 1 --pings 5 --batch 10 --batch-count 95"
    argv += " --large-size 64k --large-count 2 --json"
    done = subprocess.run(
        [sys.executable, "-m", "channels", *argv.split()],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [r["backend"] for r in report["results"]] == ["pipe", "queue"]
    assert [(r["row"], r["backend"]) for r in report["rows"]] == [
        (row, backend) for row in ("batch", "large", "2x2") for backend in ("pipe", "queue")
    ]
    assert report["workload"]["batch"] == 10
    assert report["rows"][0]["shape"].startswith("95 64-byte bytes items, 10 per call")
    assert report["large_item"].startswith("65,536-byte ")
    assert "faster_fifo" in report["row_method"]
    for row in report["rows"]:
        _sane(row["channel"], 1)
        _sane(row["stdlib"], 1)
        assert row["stdlib_ratio"] > 0
        if HAS_FIFO:
            _sane(row["faster_fifo"], 1)
            assert row["faster_fifo_ratio"] > 0
        else:
            assert row["faster_fifo"] is None
            assert row["faster_fifo_ratio"] is None
    total = 2 * 2 + 3 * (2 + 2 + HAS_FIFO)
    assert f"[{total}/{total}]" in done.stderr


def test_rows_in_process_with_uneven_batches() -> None:
    """301 items in batches of 7 end with a short batch; every item is counted."""
    steps: list[str] = []
    report = _bench.run(
        ["simplequeue"], workload=TINY, rows=["batch", "2x2"], progress=steps.append
    )
    assert report.results == ()
    assert report.large_item is None
    assert [r.row for r in report.rows] == ["batch", "2x2"]
    assert len(steps) == 2 * 2 * (2 + HAS_FIFO)
    for row in report.rows:
        assert row.stdlib_ratio is not None
        assert len(row.channel.rounds_msgs_per_s) == 2
        assert row.channel.mb_per_s is not None
    assert "7 per call" in report.rows[0].shape
    assert "2 -> 2" in report.rows[1].shape
    table = _bench.format_table(report)
    assert "batch: 301 16-byte bytes items, 7 per call, 1 -> 1:" in table
    assert "x faster_fifo" in table
    assert "rows: " in table


def test_without_faster_fifo_or_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the optional packages the rows still run: bytes, and no faster_fifo column."""
    monkeypatch.setattr(runner, "faster_fifo", lambda: None)
    monkeypatch.setattr(runner, "numpy", lambda: None)
    monkeypatch.setattr(workers, "numpy", lambda: None)
    workload = _bench.Workload(repeat=1, large_size=32 << 10, large_count=2, context="fork")
    report = _bench.run(["pipe"], workload=workload, rows=["large"])
    (row,) = report.rows
    assert report.large_item == "32,768-byte bytes"
    assert row.faster_fifo is None
    assert row.faster_fifo_ratio is None
    assert row.stdlib_ratio is not None
    assert "faster_fifo is not installed" in _bench.format_table(report)


@pytest.mark.skipif(importlib.util.find_spec("numpy") is None, reason="numpy is not installed")
def test_large_items_are_numpy_arrays_when_numpy_is_installed() -> None:
    item = workers.Items(8192, large=True).payload()
    assert type(item).__module__ == "numpy"
    assert workers.touch(item) == 2  # one byte of each page, each 1


def test_items_in_batches() -> None:
    plan = workers.Items(0, batch=4).batches(10)
    assert plan == [([0, 1, 2, 3], 2), ([0, 1], 1)]
    ((batch, times),) = workers.Items(3, batch=5).batches(5)
    assert batch == [b"xxx"] * 5
    assert times == 1
    assert len({id(item) for item in batch}) == 5  # distinct, so pickle sends each
    assert workers.touch(b"\x01" * 10_000) == 3


@pytest.mark.parametrize(
    "options",
    [{"batch": 0}, {"batch_count": 0}, {"large_size": 0}, {"large_count": -1}, {"batch": True}],
)
def test_bad_workloads(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        _bench.Workload(**options)


def test_unknown_rows() -> None:
    with pytest.raises(ConfigError, match="2x2"):
        _bench.run(rows=["sideways"])
    with pytest.raises(ConfigError):
        _bench.run(rows=[])


_SMALL = (
    "bench --backend pipe --count 100 --repeat 1 --pings 5 --rows base batch"
    " --batch 10 --batch-count 50"
)


def _bench_command(argv: str, cwd: Path, before: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``channels ARGV`` in a fresh interpreter in ``cwd``, after the code ``before``."""
    env = {k: v for k, v in os.environ.items() if k != "CHANNELS_URL"}
    code = (
        f"{before}\nimport sys\nfrom channels._cli.main import main\n"
        f"sys.exit(main({argv.split()!r}))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
        check=False,
    )


def test_json_to_a_file_beside_the_tables(tmp_path: Path) -> None:
    done = _bench_command(f"{_SMALL} --json report.json", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "x list trick" in done.stdout  # the tables still go to the terminal
    report = json.loads((tmp_path / "report.json").read_text())
    assert [r["backend"] for r in report["results"]] == ["pipe"]
    (batch,) = report["rows"]
    assert batch["row"] == "batch"
    assert "the list trick" in " ".join(batch["notes"])
    _sane(batch["stdlib"], 1)


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="needs matplotlib (the plot extra)")
@pytest.mark.parametrize(("name", "magic"), [("chart.png", b"\x89PNG"), ("chart.svg", b"<?xml")])
def test_chart(tmp_path: Path, name: str, magic: bytes) -> None:
    done = _bench_command(f"{_SMALL} --chart {name}", tmp_path)
    assert done.returncode == 0, done.stderr
    data = (tmp_path / name).read_bytes()
    assert data.startswith(magic)
    if name.endswith(".svg"):
        assert b"list trick" in data  # the batch panel's baseline is named
        assert b"pipe" in data


def test_a_chart_without_matplotlib_says_what_to_install(tmp_path: Path) -> None:
    hide = "import sys\nsys.modules['matplotlib'] = None  # as if not installed"
    done = _bench_command(f"{_SMALL} --chart chart.png", tmp_path, before=hide)
    assert done.returncode == 2
    assert "pip install 'typed-channels[plot]'" in done.stderr
    assert "start method" not in done.stdout  # failed before measuring anything
    assert not (tmp_path / "chart.png").exists()


def test_a_chart_of_another_kind_is_refused(tmp_path: Path) -> None:
    done = _bench_command(f"{_SMALL} --chart chart.pdf", tmp_path)
    assert done.returncode == 2
    assert ".png or .svg" in done.stderr
