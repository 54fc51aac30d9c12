"""Argument types and error output every ``channels`` command shares."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from .._errors import ChannelError, ConfigError

__all__ = ["PROG", "port", "positive", "reported", "size", "usage_error"]

PROG = "channels"
UNITS = {"k": 1 << 10, "m": 1 << 20}


def usage_error(command: str, message: str) -> int:
    print(f"{PROG} {command}: error: {message}", file=sys.stderr)
    return 2


def reported(command: str, work: Callable[[], int]) -> int:
    """Run a command's ``work``: a ``ConfigError`` is a usage error (exit 2), any other
    ``ChannelError`` is said as a failure (exit 1)."""
    try:
        return work()
    except ConfigError as exc:
        return usage_error(command, str(exc))
    except ChannelError as exc:
        print(f"{PROG} {command}: failed: {exc}", file=sys.stderr)
        return 1


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def size(text: str) -> int:
    """Bytes, with an optional k or M suffix (1024-based); 'int' means 0."""
    cleaned = text.strip().lower()
    if cleaned == "int":
        return 0
    unit = UNITS.get(cleaned[-1:], 1)
    digits = cleaned[:-1] if unit > 1 else cleaned
    try:
        value = int(digits) * unit
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of bytes (like 64, 4k or 1M) or 'int', not {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {text!r}")
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, not {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is between 0 and 65535, not {value}")
    return value
