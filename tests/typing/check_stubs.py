"""The local tqdm stubs (``stubs/tqdm``) fit what the pool's progress bar expects.

mypy and pyright check this file; pytest never runs it. tqdm itself need
not be installed (it is the optional ``progress`` extra): the stubs are enough.
"""

# pyright: reportMissingModuleSource=false

from __future__ import annotations

from typing import NoReturn, assert_type

from tqdm.auto import tqdm

from channels._pool.progress import _BarFactory  # pyright: ignore[reportPrivateUsage]


def progress_bar() -> None:
    factory: _BarFactory = tqdm
    bar = factory(total=10, desc="map", unit="item")
    bar.update(3)
    bar.total = None
    bar.refresh()
    bar.close()


def bar_calls() -> None:
    bar = tqdm(total=10, desc="map", unit="item")
    assert_type(bar, tqdm[NoReturn])
    assert_type(bar.update(2), bool | None)
    assert_type(bar.total, float | None)
    assert_type(bar.refresh(), None)
    assert_type(bar.close(), None)
    for n in tqdm(range(3), desc="loop"):
        assert_type(n, int)
