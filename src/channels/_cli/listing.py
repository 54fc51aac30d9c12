"""``channels backends``: each backend, what it can do and the options it takes."""

from __future__ import annotations

import argparse
import json
import types
import typing
from collections.abc import Sequence
from typing import Union, cast

from .._errors import ConfigError
from .._registry import backends, get_backend

__all__ = ["backends_command"]


_FEATURES = (
    ("bounded", "bounded"),
    ("many_producers", "many producers"),
    ("many_consumers", "many consumers"),
    ("cross_machine", "cross-machine"),
)


def _describe_backends() -> list[dict[str, object]]:
    described: list[dict[str, object]] = []
    for name in backends():
        entry: dict[str, object] = {"name": name}
        try:
            backend = get_backend(name)
        except ConfigError as exc:
            entry.update(available=False, error=str(exc))
        else:
            entry.update(
                available=True,
                origin=backend.origin,
                features={attr: getattr(backend.features, attr) for attr, _ in _FEATURES},
                options={opt: _type_name(hint) for opt, hint in backend.options.items()},
            )
        described.append(entry)
    return described


def backends_command(args: argparse.Namespace) -> int:
    described = _describe_backends()
    if args.json:
        print(json.dumps(described, indent=2))
        return 0
    header = ("backend", "status", *(label for _, label in _FEATURES), "options")
    rows: list[tuple[str, ...]] = [header]
    problems: list[str] = []
    for entry in described:
        name = str(entry["name"])
        features = entry.get("features")
        options = entry.get("options")
        if isinstance(features, dict) and isinstance(options, dict):
            flags = ["yes" if features[attr] else "no" for attr, _ in _FEATURES]
            names = ", ".join(cast("dict[str, object]", options))
            rows.append((name, "ok", *flags, names or "-"))
        else:
            rows.append((name, "unavailable", *("-" for _ in _FEATURES), "-"))
            problems.append(f"{name}: {entry['error']}")
    print(_table(rows))
    for problem in problems:
        print(problem)
    return 0


def _type_name(hint: object) -> str:
    """A readable name for an option's annotated type: ``int``, ``str | None``."""
    if hint is type(None):
        return "None"
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is Union:
        return " | ".join(_type_name(arg) for arg in typing.get_args(hint))
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__qualname__
    return str(hint).replace("typing.", "")


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
