"""``channels worker MODULE:FUNCTION --inbox URL --outbox URL``: one machine's share of a stream.

It runs what ``Pool.stream`` runs (``_pool.stream``) with the inbox and outbox
joined by address: workers receive from the inbox until it ends, send
``FUNCTION(item)`` to the outbox, and close their outbox handles when done.
Started on several machines against the same ``redis://`` channels, they share
the work, and the outbox ends once the inbox has ended and every worker on
every machine has closed its handles.

SIGINT and SIGTERM stop it cleanly: the workers finish the item they run and
close their outbox handles; a worker still busy a moment later is killed, and
on ``redis`` the item it held goes back to the channel for another receiver.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.sharedctypes import Synchronized
from types import FrameType
from typing import Any, TextIO, final

from ._config import parse_spec, redact_spec
from ._errors import ConfigError
from ._open import open_receiver, open_sender
from ._pool.processes import resolve_context
from ._pool.stream import StreamRun, StreamSpec
from ._protocols import Receiver, Sender

__all__ = ["load_function", "named_channel", "run_worker"]

#: Seconds between two progress lines (only when something changed).
PROGRESS_EVERY = 1.0

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: What ``signal.signal`` takes and gives back.
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def load_function(target: str) -> Callable[[Any], Any]:
    """The callable that ``MODULE:FUNCTION`` names (``FUNCTION`` may be dotted: ``Class.method``).

    The current directory is searched first, as ``python -m`` does, so a module
    next to where the command runs is found.

    Raises:
        ConfigError: the text is not ``MODULE:FUNCTION``, the module cannot be
            imported, or it has no such callable.
    """
    module_name, sep, path = target.partition(":")
    if not sep or not module_name or not path:
        raise ConfigError(
            f"expected MODULE:FUNCTION (like 'mypackage.jobs:handle'), not {target!r}"
        )
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module {module_name!r}: {exc}") from exc
    for part in path.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ConfigError(f"module {module_name!r} has no {path!r}") from None
    if not callable(found):
        raise ConfigError(f"{target!r} is a {type(found).__name__}, not a function")
    return found  # pyright: ignore[reportUnknownVariableType]


def named_channel(url: str, option: str) -> str:
    """Check that ``url`` names one channel by address (``redis://HOST:PORT/NAME``).

    Raises:
        ConfigError: naming ``option``, when the URL names no channel.
    """
    spec = parse_spec(url)
    if "://" not in url or "name" not in spec.options:
        raise ConfigError(
            f"{option} takes the URL of a named channel, like redis://HOST:PORT/NAME, "
            f"not {redact_spec(url)!r}"
        )
    return url


@final
class _Counted:
    """``fn`` that also counts, in memory shared with this process, the items it has done."""

    __slots__ = ("__qualname__", "done", "fn")

    def __init__(self, fn: Callable[[Any], Any], done: Synchronized[int]) -> None:
        self.fn = fn
        self.done = done
        self.__qualname__ = getattr(fn, "__qualname__", type(fn).__name__)

    def __call__(self, item: object) -> object:
        result = self.fn(item)
        with self.done.get_lock():
            self.done.value += 1
        return result


def run_worker(target: str, inbox_url: str, outbox_url: str, workers: int, err: TextIO) -> int:
    """Run ``workers`` processes that turn the inbox's items into the outbox's; the exit code.

    0 once the inbox has ended and every item taken here is done; 1 when
    ``FUNCTION`` raised or a worker died; 128 + the signal's number when
    SIGINT or SIGTERM stopped it.

    Raises:
        ConfigError: a bad target or URL.
        ChannelError: a channel could not be opened.
    """
    fn = load_function(target)
    named_channel(inbox_url, "--inbox")
    named_channel(outbox_url, "--outbox")
    ctx = resolve_context(None)
    done: Synchronized[int] = ctx.Value("q", 0)
    shown = f"{target} with {workers} worker(s)"
    inbox: Receiver[object] = open_receiver[object](inbox_url)
    try:
        outbox: Sender[object] = open_sender[object](outbox_url)
    except BaseException:
        inbox.close()
        raise
    with _StopSignals() as stop:
        try:
            run = StreamRun(ctx, workers, StreamSpec(_Counted(fn, done), inbox, None, ()), outbox)
        except BaseException:
            outbox.close()
            inbox.close()
            raise
        _say(err, f"running {shown}: {redact_spec(inbox_url)} -> {redact_spec(outbox_url)}")
        shown_count = 0
        next_line = time.monotonic() + PROGRESS_EVERY
        terminating = False
        while not run.join(0.05):
            if stop.signum is not None and not terminating:
                terminating = True
                _say(err, f"stopping on {signal.Signals(stop.signum).name}")
                run.terminate()  # the workers finish their item; one still busy is killed
            if time.monotonic() >= next_line:
                next_line = time.monotonic() + PROGRESS_EVERY
                if done.value != shown_count:
                    shown_count = done.value
                    _say(err, f"{shown_count} item(s) done")
            stop.event.wait(min(0.1, max(0.0, next_line - time.monotonic())))
    inbox.close()
    failure = run.future.exception()
    count = done.value
    if stop.signum is not None:
        _say(err, f"stopped by {signal.Signals(stop.signum).name} after {count} item(s)")
        return 128 + stop.signum
    if failure is not None:
        _say(err, f"failed after {count} item(s):")
        err.write("".join(traceback.format_exception(failure)))
        err.flush()
        return 1
    _say(err, f"the inbox ended; {count} item(s) done here")
    return 0


def _say(err: TextIO, message: str) -> None:
    err.write(f"channels worker: {message}\n")
    err.flush()


@final
class _StopSignals:
    """While entered, SIGINT and SIGTERM only set ``event`` and record the first one."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._previous: dict[int, _Handler] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if self.signum is None:
            self.signum = signum
        self.event.set()

    def __enter__(self) -> _StopSignals:
        for sig in _STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
