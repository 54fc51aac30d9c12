"""Every ```python block on every documentation page runs, and prints what its comments say.

A page's blocks run in order as one script, so they share one namespace, in a
subprocess with a timeout, under the forkserver start method: children import
the page again there, as under spawn, so a page that starts processes outside
``if __name__ == "__main__":``, or defines two functions of one name, fails. A
line ``print(...)  # text`` asserts that some line of the output starts with
``text``. What runs of each page must also pass ``mypy --strict``.

An HTML comment on the line before a block changes how it runs:

- ``<!-- test: skip REASON -->``: the block does not run; it is reported as a
  skipped test with its reason. Keep these few.
- ``<!-- test: needs-backend NAME -->``: the block runs only once
  ``channels.backends()`` lists NAME; until then it is reported as skipped.

A page whose blocks open ``redis://localhost:6379`` runs against a private
redis-server, whose address replaces that one in the script.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import channels

if TYPE_CHECKING:
    from redis_server import RedisServer

pytestmark = pytest.mark.extended  # run by .ci/run after the default set

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REDIS_URL = "redis://localhost:6379"
PAGE_TIMEOUT = 240
PRINTED = re.compile(r"^\s*print\(.*\)\s*#\s*(?P<expected>.+)$")
FENCE = re.compile(r"^```(?P<lang>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!--\s*test:\s*(?P<kind>[\w-]+)\s*(?P<arg>.*?)\s*-->\s*\Z")
PRELUDE = """\
import multiprocessing

if __name__ == "__main__":
    multiprocessing.set_start_method("forkserver")
"""
#: Fence languages that are shown, not run.
SHOWN = {"", "console", "text", "toml", "yaml", "ini"}


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    source: str
    skip: str | None  # why the block does not run, or None
    waiting: bool = False  # skipped only until a backend it needs is installed


def blocks_of(path: Path) -> list[Block]:
    """The ```python blocks of one page, with the marker before each, if any."""
    text = path.read_text()
    page = str(path.relative_to(ROOT))
    found: list[Block] = []
    for fence in FENCE.finditer(text):
        lang = fence["lang"].strip()
        if lang in SHOWN:
            continue
        line = text.count("\n", 0, fence.start()) + 1
        assert lang == "python", f"{page}:{line}: a ```{lang} block would not run: use ```python"
        before = text[: fence.start()].rstrip("\n").rsplit("\n", 1)[-1]
        found.append(marked(Block(page, line, fence["body"], None), before))
    return found


def marked(block: Block, before: str) -> Block:
    """The block as the marker on the line ``before`` it says to run it."""
    marker = MARKER.search(before)
    if marker is None:
        return block
    kind, arg = marker["kind"], marker["arg"]
    where = f"{block.page}:{block.line}"
    if kind == "skip":
        assert arg, f"{where}: say why the block is skipped"
        return replace(block, skip=arg)
    if kind == "needs-backend":
        if arg in channels.backends():
            return block
        return replace(block, skip=f"needs the {arg!r} backend", waiting=True)
    raise AssertionError(f"{where}: unknown marker {kind!r}")


PAGES = sorted(DOCS.rglob("*.md"))
BLOCKS = {str(path.relative_to(ROOT)): blocks_of(path) for path in PAGES}
RUN = {page: [b for b in found if b.skip is None] for page, found in BLOCKS.items()}
SKIPPED = [b for found in BLOCKS.values() for b in found if b.skip is not None]


def test_the_pages_have_examples() -> None:
    ran = sum(len(found) for found in RUN.values())
    assert ran >= 60, f"only {ran} blocks run"
    skipped = [f"{b.page}:{b.line}: {b.skip}" for b in SKIPPED if not b.waiting]
    assert len(skipped) <= 3, skipped


@pytest.mark.timeout(PAGE_TIMEOUT + 30)
@pytest.mark.parametrize("page", sorted(page for page, found in RUN.items() if found))
def test_page_examples_run(page: str, tmp_path: Path) -> None:
    found = RUN[page]
    script, starts = assemble(found)
    env = {k: v for k, v in os.environ.items() if k != "CHANNELS_URL"}
    server = None
    if REDIS_URL in script:
        server = start_redis()
        script = script.replace(REDIS_URL, server.url())
    try:
        (tmp_path / "page.py").write_text(script)
        done = subprocess.run(
            [sys.executable, "page.py"],
            capture_output=True,
            text=True,
            timeout=PAGE_TIMEOUT,
            cwd=tmp_path,
            env=env,
            check=False,
        )
    finally:
        if server is not None:
            server.remove()
    where = "\n".join(
        f"script line {start}: {b.page}:{b.line}" for start, b in zip(starts, found, strict=True)
    )
    assert done.returncode == 0, f"{done.stderr}\nblocks:\n{where}"
    out = done.stdout.splitlines()
    for block in found:
        for number, line in enumerate(block.source.splitlines(), block.line + 1):
            if m := PRINTED.match(line):
                want = m["expected"].strip()
                assert any(o.startswith(want) for o in out), (
                    f"{block.page}:{number}: {want!r} not in the output {out!r}"
                )


def assemble(found: list[Block]) -> tuple[str, list[int]]:
    """One script of the blocks in order, and the line of the script each block starts at."""
    parts: list[str] = [PRELUDE]
    starts: list[int] = []
    line = PRELUDE.count("\n") + 1
    for block in found:
        header = f"# {block.page}:{block.line}\n"
        starts.append(line + 1)
        parts.append(header + block.source + "\n")
        line += header.count("\n") + block.source.count("\n") + 1
    return "".join(parts), starts


def start_redis() -> RedisServer:
    import redis_server

    if redis_server.SKIP_REASON:
        pytest.skip(redis_server.SKIP_REASON)
    return redis_server.RedisServer().start()


@pytest.mark.parametrize("block", SKIPPED, ids=[f"{b.page}:{b.line}" for b in SKIPPED])
def test_skipped_block(block: Block) -> None:
    """Reported, so that skipped blocks are counted and seen."""
    pytest.skip(f"{block.page}:{block.line}: {block.skip}")


#: mypy for the pages: a page's blocks may bind one name again, as a reader who runs them one
#: at a time would; the modules the migration guides come from are untyped.
MYPY_CONFIG = """\
[mypy]
strict = True
allow_redefinition = True
disable_error_code = no-redef
show_error_codes = True
pretty = False

[mypy-faster_fifo.*,faster_fifo,aioprocessing.*,aioprocessing]
ignore_missing_imports = True
"""


def test_the_pages_type_check(tmp_path: Path) -> None:
    """What runs of each page also passes ``mypy --strict``, one module per page."""
    for page, found in RUN.items():
        if found:
            module = re.sub(r"\W", "_", page.removesuffix(".md"))
            (tmp_path / f"{module}.py").write_text(assemble(found)[0])
    (tmp_path / "mypy.ini").write_text(MYPY_CONFIG)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(tmp_path / "mypy.ini"),
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            *sorted(str(path) for path in tmp_path.glob("*.py")),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_reference_documents_every_public_name() -> None:
    """A name added to ``channels.__all__`` needs a ``::: channels.NAME`` on a reference page."""
    pages = "".join(path.read_text() for path in (DOCS / "reference").glob("*.md"))
    documented = set(re.findall(r"^::: channels\.(\w+)", pages, flags=re.MULTILINE))
    missing = sorted(set(channels.__all__) - documented - {"__version__"})
    assert not missing, f"add ::: channels.NAME to a page of docs/reference/ for {missing}"
