"""The source tree keeps the shape docs/architecture.md draws.

No module is over the size a reader takes in at once, no subsystem reaches
into another's private names, and every module imports alone (so there is no
import cycle that only the order of imports in ``__init__`` hides).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "channels"
#: The longest a module may be, in lines.
MOST_LINES = 520


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _subsystem(module: str) -> str:
    """``channels._backends.redis.core`` -> ``channels._backends.redis``; top-level modules
    are each their own."""
    parts = module.split(".")
    depth = 3 if parts[1:2] == ["_backends"] else 2
    return ".".join(parts[:depth])


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """Each ``from X import names`` in ``path``, with ``X`` made absolute."""
    module = _name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, [alias.name for alias in node.names]))
    return found


def test_no_module_is_too_long_to_read() -> None:
    long = {
        str(p.relative_to(SRC)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MOST_LINES
    }
    assert not long, f"modules over {MOST_LINES} lines: {long}"


def test_no_subsystem_reaches_into_another_ones_private_names() -> None:
    reached: list[str] = []
    for path in _modules():
        here = _subsystem(_name(path))
        for target, names in _imports(path):
            if not target.startswith("channels.") or _subsystem(target) == here:
                continue
            inner = target.split(".")[len(_subsystem(target).split(".")) :]
            private = [p for p in inner if p.startswith("_")]
            private += [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                reached.append(f"{_name(path)} -> {target}: {', '.join(private)}")
    assert not reached, "\n".join(reached)


@pytest.mark.parametrize("module", [_name(p) for p in _modules() if p.name != "__main__.py"])
def test_every_module_imports_alone(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
