"""``channels worker MODULE:FUNCTION --inbox URL --outbox URL``: one machine's share of a stream.

This process receives batches of items from the inbox, has a worker process
of a ``Pool`` run ``FUNCTION`` on each, and sends the results to the outbox
before it takes the next batch on that receiver (see ``_pool.relay``), so an
item is acknowledged only once its result is out. Started on several machines against
the same ``redis://`` channels, they share the work, and the outbox ends once
the inbox has ended and every machine has closed its outbox handle.

Crashes: a worker process that dies running an item is replaced and the item
runs again, up to ``--max-tries`` times; then it goes to ``--dead-letter`` as a
``DeadLetter``, or, without one, the run fails. A failed run, and this process
dying, leave the outbox open: this process holds a lease on it from the start,
so its readers get ``ChannelBroken`` once that lapses, never a short clean end.

SIGINT and SIGTERM stop it cleanly: items being run get a moment to finish;
the workers still busy then are killed, and the items they held go back to
the inbox (this process leaves without acknowledging them).
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from types import FrameType
from typing import Any, TextIO, final

from .._config import parse_spec, redact_spec
from .._engine.sender import SenderHandle
from .._errors import ChannelError, ChannelTimeout, ConfigError
from .._open import open_receiver, open_sender
from .._pool.batches import Marks, install
from .._pool.pool import Pool
from .._pool.relay import DeadLetter, Relay
from .._protocols import Receiver, Sender
from .._timing import WORKER_PROGRESS_EVERY, WORKER_STOP_GRACE

__all__ = ["load_function", "named_channel", "run_worker"]

#: Receivers, each holding at most one batch, per worker process: a few more than the
#: workers, so that none waits while a slot sends results and takes the next batch.
SLOTS_PER_WORKER = 2
#: The most items one receiver takes at once (``--batch``).
DEFAULT_BATCH = 64

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


def run_worker(
    target: str,
    inbox_url: str,
    outbox_url: str,
    workers: int,
    err: TextIO,
    *,
    max_tries: int = 3,
    dead_letter_url: str | None = None,
    batch: int = DEFAULT_BATCH,
) -> int:
    """Run ``workers`` processes that turn the inbox's items into the outbox's; the exit code.

    0 once the inbox has ended and every item taken here is done or
    dead-lettered; 1 when ``FUNCTION`` raised or an item killed ``max_tries``
    workers (without a dead-letter channel), or a channel broke; 128 + the
    signal's number when SIGINT or SIGTERM stopped it. Each of the
    ``workers * SLOTS_PER_WORKER`` receivers takes up to ``batch`` items at a
    time: what this process holds unacknowledged, and what goes back to the
    inbox if it dies.

    Raises:
        ConfigError: a bad target, URL or count.
        ChannelError: a channel could not be opened.
    """
    fn = load_function(target)
    named_channel(inbox_url, "--inbox")
    named_channel(outbox_url, "--outbox")
    if dead_letter_url is not None:
        named_channel(dead_letter_url, "--dead-letter")
    if isinstance(max_tries, bool) or not isinstance(max_tries, int) or max_tries < 1:
        raise ConfigError(f"--max-tries takes a count of at least 1, not {max_tries!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"--batch takes a count of at least 1, not {batch!r}")
    with _StopSignals() as stop:  # from before the outbox is leased: a stop is never a crash
        receivers, outbox, dead_letter = _open(inbox_url, outbox_url, dead_letter_url, workers)
        shown = f"{target} with {workers} worker(s)"
        _say(err, f"running {shown}: {redact_spec(inbox_url)} -> {redact_spec(outbox_url)}")
        marks = Marks(len(receivers))
        pool = Pool(workers, initializer=install, initargs=(marks.shared,))
        relay = Relay(
            fn,
            target,
            pool,
            receivers,
            outbox,
            marks=marks,
            batch=batch,
            dead_letter=dead_letter,
            max_tries=max_tries,
            say=lambda message: _say(err, message),
        )
        try:
            _watch(relay, pool, stop, err)
        except BaseException:  # a second Ctrl-C, or a bug: leave as a crash would
            relay.stop()
            pool.terminate(kill=True)
            err.write(traceback.format_exc())
            err.flush()
            os._exit(1)
    if relay.failure is None and not relay.stopping:
        pool.close()
        with contextlib.suppress(ChannelTimeout):
            pool.join(WORKER_STOP_GRACE * 5)
    pool.terminate()
    for rx in receivers:
        if rx not in relay.holding:
            rx.close()  # acknowledges what it took: every such item is done
    if dead_letter is not None:
        dead_letter.close()
    if relay.failure is None:
        outbox.close()
    else:
        _give_up(outbox, f"channels worker gave up: {relay.failure}")
    code = _report(relay, stop.signum, err)
    if relay.holding or relay.failure is not None:
        # Leave as a crash would: no exit hook may acknowledge the items held unfinished,
        # so they go back to the inbox, and an outbox left open after a failure breaks
        # for its readers once this process's lease lapses, instead of ending short.
        err.flush()
        os._exit(code)
    return code


def _open(
    inbox_url: str, outbox_url: str, dead_letter_url: str | None, workers: int
) -> tuple[list[Receiver[object]], Sender[object], Sender[DeadLetter[object]] | None]:
    """The inbox's receivers (one per slot), the outbox and the dead-letter channel."""
    with contextlib.ExitStack() as opened:
        receivers = [
            opened.enter_context(open_receiver[object](inbox_url))
            for _ in range(workers * SLOTS_PER_WORKER)
        ]
        outbox = opened.enter_context(open_sender[object](outbox_url))
        dead_letter: Sender[DeadLetter[object]] | None = None
        if dead_letter_url is not None:
            dead_letter = opened.enter_context(open_sender[DeadLetter[object]](dead_letter_url))
            _hold_lease(dead_letter)
        _hold_lease(outbox)
        opened.pop_all()  # from here on, what is closed depends on how the run ends
    return receivers, outbox, dead_letter


def _report(relay: Relay, signum: int | None, err: TextIO) -> int:
    """Say how the run ended; its exit code."""
    count = relay.done
    extra = f", {relay.retried} run again after a crash" if relay.retried else ""
    if relay.dead_lettered:
        extra += f", {relay.dead_lettered} dead-lettered"
    if relay.failure is not None:
        _say(err, f"failed after {count} item(s){extra}; the outbox is left to break:")
        err.write("".join(traceback.format_exception(relay.failure)))
        return 1
    if signum is not None:
        left = f"; {len(relay.holding)} unfinished go back to the inbox" if relay.holding else ""
        name = signal.Signals(signum).name
        _say(err, f"stopped by {name} after {count} item(s){extra}{left}")
        return 128 + signum
    _say(err, f"the inbox ended; {count} item(s) done here{extra}")
    return 0


def _watch(relay: Relay, pool: Pool, stop: _StopSignals, err: TextIO) -> None:
    """Wait for the relay to end; stop it on a signal or a failure; show progress."""
    shown_count = 0
    next_line = time.monotonic() + WORKER_PROGRESS_EVERY
    kill_at: float | None = None
    while not relay.join(0.05):
        if (stop.signum is not None or relay.stopping) and kill_at is None:
            if stop.signum is not None:
                _say(err, f"stopping on {signal.Signals(stop.signum).name}")
            relay.stop()  # the slots finish the items they hold...
            kill_at = time.monotonic() + WORKER_STOP_GRACE
        if kill_at is not None and time.monotonic() >= kill_at:
            pool.terminate()  # ... or they go back to the inbox
            kill_at = math.inf
        if time.monotonic() >= next_line:
            next_line = time.monotonic() + WORKER_PROGRESS_EVERY
            if relay.done != shown_count:
                shown_count = relay.done
                _say(err, f"{shown_count} item(s) done")
        stop.event.wait(min(0.1, max(0.0, next_line - time.monotonic())))


def _hold_lease(sender: Sender[Any]) -> None:
    """Count this process as one that sends on ``sender`` from now on, before it sends.

    An empty put is a send of nothing: on ``redis`` it takes out the lease this
    process keeps fresh while it lives, so that if it dies (a machine lost),
    readers get ``ChannelBroken`` once the lease lapses instead of waiting for
    ever on a handle nobody will close.
    """
    if isinstance(sender, SenderHandle):
        core, token = sender._core, sender._token  # pyright: ignore[reportPrivateUsage]
        core.put(token, [], None)


def _give_up(sender: Sender[Any], why: str) -> None:
    """Break ``sender``'s channel saying ``why``, where its backend can; else its lease will.

    Either way its readers get ``ChannelBroken``, never a clean end after a
    short stream; this way they also learn which item it was.
    """
    if isinstance(sender, SenderHandle):
        core = sender._core  # pyright: ignore[reportPrivateUsage]
        breaker = getattr(core, "break_channel", None)
        if callable(breaker):
            with contextlib.suppress(ChannelError):
                breaker(why)


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
