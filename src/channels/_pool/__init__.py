"""The process pool: ``Pool``, what it hands back, and ``PoolExecutor``.

``pool`` holds the public class and its calls, ``life_cycle`` its closing
and joining, and ``calls`` what every call does to become a job;
``pool_state`` the state the pool's threads share and the calls any thread
makes on it; ``dispatcher`` the thread that feeds workers and sees them die;
``jobs`` the state of one call; ``results`` the
views the caller holds on it; ``worker_handles`` the parent's side of each
worker (pipes, framing, starting and stopping); ``worker_loop`` what runs
inside a worker; ``processes`` starting processes with Ctrl-C kept out;
``remote_errors`` exceptions across the process boundary; ``progress`` the
progress reports; ``stream`` workers that drain a channel; ``relay`` what
``channels worker`` runs, items held until their results are out; ``batches``
what its batches run in a worker; ``executor`` the ``concurrent.futures.Executor``
face.

The names below are imported on first use, as in the package itself: a worker
process imports this package on its way to ``worker_loop``, and must not pay
for the parent's side of the pool.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .executor import PoolExecutor as PoolExecutor
    from .pool import AsyncResult as AsyncResult
    from .pool import Pool as Pool
    from .relay import DeadLetter as DeadLetter
    from .results import ResultIterator as ResultIterator

_LAZY = {
    "PoolExecutor": ".executor",
    "AsyncResult": ".pool",
    "Pool": ".pool",
    "DeadLetter": ".relay",
    "ResultIterator": ".results",
}


# At run time only: to type checkers, a name missing above is an error, not an object.
if not TYPE_CHECKING:
    from importlib import import_module

    def __getattr__(name: str) -> object:
        if name not in _LAZY:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value


__all__ = ["AsyncResult", "DeadLetter", "Pool", "PoolExecutor", "ResultIterator"]
