"""What the sdist and the wheel carry, built offline with the installed setuptools."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
)
BUILD = """
import sys
from setuptools import build_meta
hook = getattr(build_meta, "build_" + sys.argv[1])
print(hook(sys.argv[2]))
"""


def build(kind: str, source: Path, out: Path) -> Path:
    """Run setuptools' PEP 517 hook ``build_<kind>`` in ``source``; no network, no isolation."""
    done = subprocess.run(
        [sys.executable, "-c", BUILD, kind, str(out)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out / done.stdout.splitlines()[-1]


class Dists(NamedTuple):
    sdist: Path
    unpacked: Path
    wheel: Path


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """The sdist, built from a copy of the source tree, unpacked, and the wheel built from it."""
    pytest.importorskip("setuptools", minversion="77", reason="needs setuptools>=77 (dev extra)")
    tmp = tmp_path_factory.mktemp("dist")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    sdist = build("sdist", source, tmp)
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp / "unpacked", filter="data")
    (unpacked,) = (tmp / "unpacked").iterdir()
    return Dists(sdist, unpacked, build("wheel", unpacked, tmp))


def sdist_files(sdist: Path) -> set[str]:
    with tarfile.open(sdist) as archive:
        return {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}


def test_the_sdist_carries_the_whole_test_suite(dists: Dists) -> None:
    files = sdist_files(dists.sdist)
    assert {"LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "PKG-INFO"} <= files
    assert "src/channels/py.typed" in files
    suite = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert {"tests/conftest.py", "tests/support.py", "tests/children.py"} <= suite
    assert suite <= files  # every helper the tests import, not only test_*.py
    assert any(name.startswith("stubs/") for name in files)  # mypy reads them in tests
    assert not [name for name in files if "__pycache__" in name or name.endswith(".pyc")]


def test_the_sdists_tests_run_there(dists: Dists) -> None:
    """Every test collects from the unpacked sdist, and one module passes there."""
    env = {**os.environ, "PYTHONPATH": str(dists.unpacked / "src")}
    run = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    collected = subprocess.run(
        [*run, "--collect-only"],
        cwd=dists.unpacked,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert collected.returncode == 0, collected.stdout[-3000:]
    # "N/M tests collected (K deselected)": the suite pairs each backend with its own workers
    assert re.search(r"^\d+(/\d+)? tests collected", collected.stdout, flags=re.MULTILINE)
    ran = subprocess.run(
        [*run, "tests/test_codec.py"],
        cwd=dists.unpacked,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout[-3000:]
    assert re.search(r"^\d+ passed", ran.stdout, flags=re.MULTILINE)


def test_the_wheel_holds_the_package_only(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as wheel:
        names = wheel.namelist()
        (info,) = {name.split("/")[0] for name in names if ".dist-info/" in name}
        metadata = Parser().parsestr(wheel.read(f"{info}/METADATA").decode())
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"channels", info}  # no tests/, no stubs/, nothing else
    assert "channels/py.typed" in names
    assert "channels/__main__.py" in names
    assert f"{info}/licenses/LICENSE" in names
    assert metadata["Name"] == "typed-channels"
    assert metadata["License-Expression"] == "MIT"
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL") or [])
    assert urls == PYPROJECT["project"]["urls"]
    assert "channels = channels._cli.main:main" in entry_points
    assert "docs/guarantees.md" in (metadata.get_payload() or "")  # README is the description


def test_readme_links_work_outside_the_repository() -> None:
    """PyPI shows README without the repository around it: every link must be absolute."""
    prose = re.sub(r"```.*?```|`[^`]*`", "", (ROOT / "README.md").read_text(), flags=re.DOTALL)
    targets = re.findall(r"\]\(([^)\s]+)\)", prose)
    assert targets
    relative = [t for t in targets if not t.startswith(("https://", "#"))]
    assert not relative, relative
    home = PYPROJECT["project"]["urls"]["Homepage"]
    assert PYPROJECT["project"]["urls"]["Guarantees"] in targets
    assert all(t.startswith(home) for t in targets if "github.com" in t)


def test_the_test_script_fails_when_no_test_ran() -> None:
    """pytest's exit code 5 (nothing collected) must not pass as success."""
    script = str(ROOT / "scripts" / "test")
    done = subprocess.run(
        [script, "--no-setup", "-k", "no_test_has_this_name", "tests/test_packaging.py"],
        env={**os.environ, "CHANNELS_VENV": sys.prefix},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 5, done.stdout + done.stderr
    assert "collected no tests" in done.stderr
