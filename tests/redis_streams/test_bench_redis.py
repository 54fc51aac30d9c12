"""``channels bench --spec redis://...``: the backend beside a hand-written redis-py Streams loop.

The tests check that the numbers are well formed and that the runs leave no
stream behind, never how fast anything is.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from channels import _bench

from redis_server import SKIP_REASON, RedisServer
from support import WAIT

pytestmark = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")

TINY = _bench.Workload(count=200, size=16, repeat=2, pings=20, batch=10, batch_count=300)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A server of the test's own, so that the keys left can be counted."""
    private = RedisServer().start()
    yield private
    private.remove()


def test_a_named_redis_spec_runs_every_round_on_fresh_channels(server: RedisServer) -> None:
    report = _bench.run(spec=server.url("jobs"), workload=TINY, rows=["base", "batch", "2x2"])
    (result,) = report.results
    assert result.backend == "redis"
    assert result.raw_primitive is not None
    assert "XREADGROUP" in result.raw_primitive
    assert result.raw is not None
    assert len(result.raw.rounds_msgs_per_s) == len(result.channel.rounds_msgs_per_s) == 2
    assert result.ratio is not None
    assert result.ratio > 0
    assert result.channel.p50_us > 0
    assert any("hand-written loop on the same server" in note for note in result.notes)
    assert [row.row for row in report.rows] == ["batch", "2x2"]
    for row in report.rows:
        assert row.stdlib_ratio is not None
        assert row.stdlib_ratio > 0
    # Every channel was drained and removed, and the loop's streams deleted: what stays is
    # each ended channel's end marker (and its bell), never an item.
    left = server.keys()
    assert not [key for key in left if not key.endswith((":tomb", ":bell"))], left
    assert all("{jobs-bench-" in key for key in left)
    assert "x stdlib" in _bench.format_table(report)


def test_bench_with_a_redis_spec_from_the_command_line(server: RedisServer) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "channels", "bench", "--spec", server.url("cli"), "--count", "100",
         "--repeat", "1", "--pings", "10", "--rows", "base"],
        capture_output=True,
        text=True,
        timeout=WAIT * 3,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert server.url("cli") in done.stdout
    assert "hand-written loop" in done.stdout
