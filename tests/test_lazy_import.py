"""``import channels`` loads only what the first use needs, and a pool worker only what it runs.

Each check runs in a fresh interpreter, since this one has imported everything
already, and looks at ``sys.modules`` there.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Container
from pathlib import Path

import pytest

import channels

# Modules no plain ``import channels`` may load: each costs milliseconds that a
# program, and every spawned child, would pay without using it.
_HEAVY = (
    "asyncio",
    "redis",
    "importlib.metadata",
    "concurrent.futures",
    "channels._backends.manager.hub",
    "channels._backends.manager.server",
    "channels._backends.redis",
    "channels._pool.pool",
    "channels._pool.dispatcher",
    "channels._cli.main",
    "channels._engine.select",
)


def _loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_import_loads_nothing_heavy() -> None:
    loaded = _loaded_after("import channels")
    assert "channels._errors" in loaded
    assert sorted(loaded & set(_HEAVY)) == []


def test_a_first_local_channel_loads_no_asyncio_pool_manager_redis_or_metadata() -> None:
    loaded = _loaded_after(
        "import channels\n"
        "ch = channels.open_channel[int]('pipe')\n"
        "ch.send(1)\n"
        "assert ch.recv() == 1\n"
        "ch.close()"
    )
    assert "channels._backends.local.channel" in loaded
    assert sorted(loaded & set(_HEAVY)) == []


def test_asyncio_support_still_loads_when_used() -> None:
    loaded = _loaded_after(
        "import asyncio, channels\n"
        "async def main() -> None:\n"
        "    ch = channels.open_channel[int]('queue')\n"
        "    ch.send(1)\n"
        "    assert await ch.arecv() == 1\n"
        "    ch.send(2)\n"
        "    assert await channels.aselect(ch, timeout=5) == (ch, 2)\n"
        "    ch.close()\n"
        "asyncio.run(main())"
    )
    assert {"asyncio", "channels._engine.select"} <= loaded


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_pool_worker_imports_only_the_worker_side(method: str) -> None:
    code = (
        "import json, channels\n"
        f"with channels.Pool(1, context={method!r}) as pool:\n"
        "    inside = pool.apply(eval, args=('sorted(__import__(\"sys\").modules)',))\n"
        "print(json.dumps(inside))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    inside = set(json.loads(done.stdout.splitlines()[-1]))
    assert "channels._pool.worker_loop" in inside
    parent_side = {"channels._pool.pool", "channels._pool.dispatcher", "channels._pool.jobs"}
    assert sorted(inside & (parent_side | set(_HEAVY))) == []


# What a pool's parent needs none of before its first result: each costs
# milliseconds that multiprocessing.Pool does not pay.
_NOT_BEFORE_A_FIRST_RESULT = (
    "dataclasses",
    "inspect",
    "logging",
    "concurrent.futures",
    "urllib.parse",
    "channels._core",
    "channels._config",
    "channels._pool.stream",
)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_a_pool_imports_only_what_its_first_result_needs(method: str) -> None:
    loaded = _loaded_after(
        "import channels\n"
        f"with channels.Pool(2, context={method!r}) as pool:\n"
        "    assert pool.apply(abs, args=(-1,)) == 1"
    )
    assert "channels._pool.dispatcher" in loaded
    assert sorted(loaded & set(_NOT_BEFORE_A_FIRST_RESULT)) == []


def _init_source() -> ast.Module:
    return ast.parse(Path(channels.__file__).read_text())


def test_every_public_name_resolves_to_its_definition() -> None:
    for name in channels.__all__:
        value = getattr(channels, name)
        if name == "__version__":
            assert isinstance(value, str)
            continue
        defined_in = getattr(value, "__module__", None)
        assert defined_in is None or defined_in.startswith("channels"), name
    assert set(channels.__all__) <= set(dir(channels))


def test_the_lazy_table_and_the_type_checkers_imports_agree() -> None:
    """A name added to one place and not the others is caught here, not by a user."""
    typed: dict[str, str] = {}
    eager: set[str] = set()
    for node in _init_source().body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for inner in node.body:
                if isinstance(inner, ast.ImportFrom):
                    for alias in inner.names:
                        assert alias.asname == alias.name, "re-export as `import X as X`"
                        typed[alias.name] = "." * inner.level + (inner.module or "")
        elif isinstance(node, ast.ImportFrom) and node.level:
            # Only the exceptions are imported at once: anything else goes in _LAZY.
            assert node.module == "_errors", f"import from .{node.module} lazily, in _LAZY"
            eager.update(alias.name for alias in node.names)
    assert typed == channels._LAZY
    assert not eager & set(typed)
    assert set(channels.__all__) == eager | set(typed) | {"__version__"}


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        _ = channels.no_such_name  # type: ignore[attr-defined]


def test_the_forkserver_preloads_the_worker_side_and_keeps_the_users_modules() -> None:
    code = (
        "import multiprocessing, channels\n"
        "from multiprocessing import forkserver\n"
        "multiprocessing.set_forkserver_preload(['json'])\n"
        "with channels.Pool(1, context='forkserver') as pool:\n"
        "    assert pool.apply(abs, args=(-1,)) == 1\n"
        "print(forkserver._forkserver._preload_modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split("\n")[-2] == "['json', 'channels._pool.worker_loop']"


def test_the_command_line_reads_its_version_only_when_asked() -> None:
    loaded = _loaded_after(
        "import contextlib, io\n"
        "from channels._cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])"
    )
    assert "channels._cli.main" in loaded
    assert "importlib.metadata" not in loaded
    done = subprocess.run(
        [sys.executable, "-m", "channels", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout == f"channels {channels.__version__}\n"


def test_every_module_can_be_imported_first() -> None:
    """With nothing imported eagerly, a spawned child may meet any module first (by unpickling
    one of its objects): no import cycle may leave a module half made then."""
    package = Path(channels.__file__).parent
    names = sorted(
        "channels." + ".".join(path.relative_to(package).with_suffix("").parts)
        for path in package.rglob("*.py")
        if path.name != "__init__.py" and path.stem != "__main__"
    )
    driver = (
        "import os, sys, traceback\n"
        "failed = []\n"
        "for name in sys.argv[1:]:\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        try:\n"
        "            __import__(name)\n"
        "        except BaseException:\n"
        "            traceback.print_exc()\n"
        "            os._exit(1)\n"
        "        os._exit(0)\n"
        "    if os.waitpid(pid, 0)[1] != 0:\n"
        "        failed.append(name)\n"
        "print(failed)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", driver, *names],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == "[]", done.stderr


def _imports(path: Path, name: str, modules: Container[str]) -> set[str]:
    """Which of ``modules`` module ``name`` imports: at the top, in functions, for types."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*parts, module] if module else parts)
            for alias in node.names:  # a submodule, or a name defined in the module
                inner = f"{module}.{alias.name}"
                found.add(inner if inner in modules else module)
    return {found_name for found_name in found if found_name in modules} - {name}


def test_no_two_modules_import_each_other() -> None:
    """Not even through others, nor for types only: each module reads before those it uses."""
    package = Path(channels.__file__).parent
    modules: dict[str, Path] = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    uses = {name: _imports(path, name, modules) for name, path in modules.items()}
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            cycle = [*trail[trail.index(name) :], name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name not in done:
            for used in sorted(uses[name]):
                visit(used, [*trail, name])
            done.add(name)

    for name in sorted(modules):
        visit(name, [])
