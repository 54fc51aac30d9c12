"""A bench report as text tables."""

from __future__ import annotations

from collections.abc import Sequence

from .model import LATENCY_METHOD, RATIO_METHOD, ROW_METHOD, Report

__all__ = ["format_table"]


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _grid(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Columns aligned: the first to the left, the rest to the right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines: list[str] = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def format_table(report: Report) -> str:
    """The report as text tables with a short header saying what was measured."""
    w = report.workload
    payload = f"{w.size}-byte bytes" if w.size else "small int"
    lines = [
        f"start method {report.start_method}, median of {w.repeat} round(s); "
        f"Python {report.python}, {report.cpus} CPU(s)",
        f"ratio: {RATIO_METHOD}",
    ]
    if report.results:
        lines += [
            f"latency: {LATENCY_METHOD}",
            "",
            f"{w.count:,} {payload} items, {w.producers} producer(s) -> {w.consumers} consumer(s):",
        ]
        rows: list[tuple[str, ...]] = [
            (
                "backend",
                "raw msg/s",
                "chan msg/s",
                "ratio",
                "raw MB/s",
                "chan MB/s",
                "raw p50/p99 us",
                "chan p50/p99 us",
            )
        ]
        for res in report.results:
            raw, ch = res.raw, res.channel
            rows.append(
                (
                    res.spec,
                    _num(raw.msgs_per_s if raw else None),
                    _num(ch.msgs_per_s),
                    _num(res.ratio, 2),
                    _num(raw.mb_per_s if raw else None, 2),
                    _num(ch.mb_per_s, 2),
                    f"{raw.p50_us:.0f} / {raw.p99_us:.0f}" if raw else "-",
                    f"{ch.p50_us:.0f} / {ch.p99_us:.0f}",
                )
            )
        lines += _grid(rows)
    notes = [f"note ({res.spec}): {note}" for res in report.results for note in res.notes]
    shown: set[str] = set()
    for row in report.rows:
        if row.row in shown:
            continue
        shown.add(row.row)
        group = [r for r in report.rows if r.row == row.row]
        fifo = group[0].faster_fifo
        lines += ["", f"{row.row}: {row.shape}:"]
        # A local batch's baseline is the list trick: one list of a batch's items per put/get.
        local = all(r.backend != "redis" for r in group)
        baseline = "list trick" if row.row == "batch" and local else "stdlib"
        grid: list[tuple[str, ...]] = [
            (
                "backend",
                f"{baseline} msg/s",
                "chan msg/s",
                f"x {baseline}",
                "faster_fifo msg/s",
                "x faster_fifo",
                "chan MB/s",
            )
        ]
        for r in group:
            grid.append(
                (
                    r.spec,
                    _num(r.stdlib.msgs_per_s if r.stdlib else None),
                    _num(r.channel.msgs_per_s),
                    _num(r.stdlib_ratio, 2),
                    _num(fifo.msgs_per_s if fifo else None),
                    _num(r.faster_fifo_ratio, 2),
                    _num(r.channel.mb_per_s, 1),
                )
            )
            notes += [f"note ({r.row}, {r.spec}): {note}" for note in r.notes]
        lines += _grid(grid)
        if fifo is None:
            notes.append(f"note ({row.row}): faster_fifo is not installed; no column for it")
    if report.rows:
        lines += ["", f"rows: {ROW_METHOD}"]
    lines += notes
    return "\n".join(lines)
