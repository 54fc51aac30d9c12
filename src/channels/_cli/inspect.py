"""``channels inspect URL``: a channel's ``stats()``, as a table or JSON.

The channel is joined with ``open_receiver``, which neither starts a channel
nor counts as a sender or a receiver until it takes an item, so looking never
changes what is looked at.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TextIO

from .._config import parse_spec, redact_spec
from .._open import ChannelOptions, open_receiver
from .worker import named_channel

__all__ = ["run_inspect"]

#: Seconds an unreachable redis server is waited for, unless the URL says otherwise.
REDIS_RECONNECT = 5.0


def run_inspect(url: str, as_json: bool, out: TextIO) -> int:
    """Print the stats of the channel at ``url`` on ``out``; the exit code (0).

    Raises:
        ConfigError: the URL names no channel, or has a bad option.
        ChannelError: the channel could not be reached.
    """
    named_channel(url, "inspect")
    spec = parse_spec(url)
    options: ChannelOptions = {}
    if spec.backend in ("redis", "rediss") and "reconnect" not in spec.options:
        options["reconnect"] = REDIS_RECONNECT
    receiver = open_receiver[object](url, **options)
    try:
        stats = dataclasses.asdict(receiver.stats())
    finally:
        receiver.close()
    shown = redact_spec(url)
    if as_json:
        out.write(json.dumps({"channel": shown, **stats}, indent=2) + "\n")
        return 0
    rows = [("channel", shown)]
    rows += [(name, _value(value)) for name, value in stats.items()]
    width = max(len(name) for name, _ in rows)
    out.write("".join(f"{name.ljust(width)}  {value}\n" for name, value in rows))
    return 0


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
