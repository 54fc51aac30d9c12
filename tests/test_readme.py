"""Every Python example in README.md runs, and prints what its comments say."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
PRINTED = re.compile(r"^\s*print\(.*\)\s*#\s*(?P<expected>.+)$")


def test_the_readme_has_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int, tmp_path: Path) -> None:
    source = BLOCKS[index]
    script = tmp_path / f"example_{index}.py"
    script.write_text(source)
    env = {k: v for k, v in os.environ.items() if k != "CHANNELS_URL"}
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    expected = [m["expected"].strip() for line in source.splitlines() if (m := PRINTED.match(line))]
    out = done.stdout.splitlines()
    for want in expected:
        assert any(line.startswith(want) for line in out), f"{want!r} not in output {out!r}"
