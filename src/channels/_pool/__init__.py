"""The process pool: ``Pool``, what it hands back, and ``PoolExecutor``.

``pool`` holds the public class; ``dispatcher`` the thread that feeds
workers and sees them die; ``jobs`` the state of one call; ``results`` the
views the caller holds on it; ``worker_handles`` the parent's side of each
worker (pipes, framing, starting and stopping); ``worker_loop`` what runs
inside a worker; ``processes`` starting processes with Ctrl-C kept out;
``remote_errors`` exceptions across the process boundary; ``progress`` the
progress reports; ``stream`` workers that drain a channel; ``relay`` what
``channels worker`` runs, items held until their results are out; ``executor``
the ``concurrent.futures.Executor`` face.
"""

from .executor import PoolExecutor as PoolExecutor
from .pool import AsyncResult as AsyncResult
from .pool import Pool as Pool
from .pool import ResultIterator as ResultIterator
from .relay import DeadLetter as DeadLetter

__all__ = ["AsyncResult", "DeadLetter", "Pool", "PoolExecutor", "ResultIterator"]
