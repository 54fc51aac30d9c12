"""A bench report as a chart: one panel of throughput bars per group, PNG or SVG.

matplotlib is optional (the ``plot`` extra); it is imported by name when a
chart is asked for and seen through the small protocols below, so the project
type-checks and runs without it.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, cast

from .._errors import ConfigError
from .model import Report

__all__ = ["FORMATS", "check_chart", "write_chart"]

#: The file types a chart can be written as, by suffix.
FORMATS = (".png", ".svg")

_INSTALL = "pip install 'typed-channels[plot]'"


class _Axes(Protocol):
    def barh(
        self, y: Sequence[float], width: Sequence[float], height: float, label: str
    ) -> object: ...

    def set_yticks(self, ticks: Sequence[float], labels: Sequence[str]) -> object: ...

    def set_title(self, label: str, fontsize: str) -> object: ...

    def set_xlabel(self, label: str) -> object: ...

    def legend(self, fontsize: str) -> object: ...

    def invert_yaxis(self) -> None: ...


class _Figure(Protocol):
    def add_subplot(self, nrows: int, ncols: int, index: int) -> _Axes: ...

    def tight_layout(self) -> None: ...

    def savefig(self, fname: str) -> None: ...


class _FigureModule(Protocol):
    def Figure(self, figsize: tuple[float, float]) -> _Figure: ...


def check_chart(path: str) -> _FigureModule:
    """matplotlib's figure module, once ``path`` is known to name a chart it can write.

    Raises:
        ConfigError: the suffix is not one of ``FORMATS``, or matplotlib is missing.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"--chart writes {' or '.join(FORMATS)} files, not {path!r}")
    try:
        module = importlib.import_module("matplotlib.figure")
    except ImportError:
        raise ConfigError(f"--chart needs matplotlib: {_INSTALL}") from None
    return cast("_FigureModule", module)


# One panel's bars: (label, {contender: items per second}) per backend.
_Panel = tuple[str, list[tuple[str, dict[str, float]]]]


def _panels(report: Report) -> list[_Panel]:
    w = report.workload
    panels: list[_Panel] = []
    bars: list[tuple[str, dict[str, float]]]
    if report.results:
        bars = [
            (
                res.spec,
                {
                    **({"primitive": res.raw.msgs_per_s} if res.raw else {}),
                    "channel": res.channel.msgs_per_s,
                },
            )
            for res in report.results
        ]
        title = f"{w.count:,} items, {w.producers} -> {w.consumers}, one per call"
        panels.append((title, bars))
    for group in dict.fromkeys(r.row for r in report.rows):
        rows = [r for r in report.rows if r.row == group]
        bars = []
        for r in rows:
            if r.backend == "redis":
                baseline = "redis-py"
            else:
                baseline = "list trick" if group == "batch" else "stdlib"
            rates = {baseline: r.stdlib.msgs_per_s} if r.stdlib else {}
            rates["channel"] = r.channel.msgs_per_s
            if r.faster_fifo is not None:
                rates["faster_fifo"] = r.faster_fifo.msgs_per_s
            bars.append((r.spec, rates))
        panels.append((f"{group}: {rows[0].shape}", bars))
    return panels


def write_chart(report: Report, path: str) -> None:
    """Draw ``report`` as horizontal bars (items per second), one panel per group, to ``path``.

    Raises:
        ConfigError: as ``check_chart``, or the report has nothing to draw.
    """
    figures = check_chart(path)
    panels = _panels(report)
    if not panels:
        raise ConfigError("the bench report has no rows to draw")
    figure = figures.Figure(figsize=(8.0, 2.2 + 2.0 * len(panels)))
    for index, (title, bars) in enumerate(panels, start=1):
        axes = figure.add_subplot(len(panels), 1, index)
        contenders = list(dict.fromkeys(name for _, rates in bars for name in rates))
        height = 0.8 / len(contenders)
        for k, contender in enumerate(contenders):
            ys = [i + k * height for i, (_, rates) in enumerate(bars) if contender in rates]
            widths = [rates[contender] for _, rates in bars if contender in rates]
            axes.barh(ys, widths, height=height, label=contender)
        middle = (len(contenders) - 1) * height / 2
        axes.set_yticks([i + middle for i in range(len(bars))], [spec for spec, _ in bars])
        axes.invert_yaxis()
        axes.set_title(title, fontsize="medium")
        axes.set_xlabel("items per second")
        axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path)
