"""Each program in ``examples/`` runs as ``python examples/NAME.py`` and prints what it should."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

EXPECTED = {
    "producer_consumer": """\
consumed job 0
consumed job 1
consumed job 2
consumed job 3
consumed job 4
the channel ended
""",
    "pipe_pipeline": """\
1
4
9
16
25
pipeline done
""",
    "two_writers": """\
alpha [0, 1, 2]
beta [0, 1, 2]
items received: 6
""",
    "joinable_workers": "all tasks done\n" + "".join(f"{n}^3 = {n**3}\n" for n in range(10)),
    "pool_calls": """\
map: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
starmap: [6, 12, 100]
apply_async with a callback: 42
apply_async, typed form: [0, 1, 4]
callback got: [42]
""",
    "shared_memory": """\
hits: 4000
totals: [0.0, 1.5, 3.0, 4.5]
sum: 9.0
""",
    "managed_objects": """\
ada: 30
grace: 50
linus: 50
log: ['ada played', 'grace played', 'linus played']
""",
    "lock_output": """\
every block whole: True
worker 0 line 0 | worker 0 line 1 | worker 0 line 2
worker 1 line 0 | worker 1 line 1 | worker 1 line 2
worker 2 line 0 | worker 2 line 1 | worker 2 line 2
""",
    "network_manager": """\
numbers sent by the client: 100
their total: 5050
""",
}


def test_every_example_is_checked() -> None:
    assert sorted(path.stem for path in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_output(name: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=EXAMPLES.parent,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == EXPECTED[name]
    assert done.stderr == ""
