"""``channels bench``: throughput and latency of each backend beside what it competes with.

The base rows put each backend beside the stdlib primitive it wraps, with
latency; the extra rows measure batches, large items and 2 producers to 2
consumers, beside the stdlib primitive and, when it is installed,
``faster_fifo``. Only the standard library is needed; numpy and faster_fifo
are used when installed (the ``bench`` extra). The modules, one job each:

- ``model``: the workload and the report (frozen dataclasses);
- ``optional``: typed access to numpy and faster_fifo, when installed;
- ``primitives``: the baselines, stdlib and faster_fifo;
- ``workers``: what the child processes run;
- ``processes``: starting, timing and stopping the processes of one run;
- ``runner``: the plan, the rounds, the report;
- ``table``: the report as text.
"""

from .model import LATENCY_METHOD as LATENCY_METHOD
from .model import LOCAL_BACKENDS as LOCAL_BACKENDS
from .model import RATIO_METHOD as RATIO_METHOD
from .model import ROW_METHOD as ROW_METHOD
from .model import ROWS as ROWS
from .model import BackendResult as BackendResult
from .model import BenchError as BenchError
from .model import Rate as Rate
from .model import Report as Report
from .model import RowResult as RowResult
from .model import Side as Side
from .model import Workload as Workload
from .primitives import RAW_PRIMITIVES as RAW_PRIMITIVES
from .runner import run as run
from .table import format_table as format_table

__all__ = [
    "LATENCY_METHOD",
    "LOCAL_BACKENDS",
    "RATIO_METHOD",
    "RAW_PRIMITIVES",
    "ROWS",
    "ROW_METHOD",
    "BackendResult",
    "BenchError",
    "Rate",
    "Report",
    "RowResult",
    "Side",
    "Workload",
    "format_table",
    "run",
]
