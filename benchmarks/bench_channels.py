"""Channel throughput beside the raw multiprocessing primitives, checked against the aim.

The aim: a channel keeps at least 95% of the throughput of the primitive it
wraps on the ``pipe`` and ``queue`` backends. This runs the same measurement as
``python -m channels bench`` (same options) and says, per backend, whether the
aim is met. ``--check`` turns a miss into exit code 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from channels import ConfigError, _bench
from channels._cli.bench import add_bench_arguments, workload_from_args

AIM = 0.95
AIM_BACKENDS = ("pipe", "queue")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench, print the table and the verdict; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_bench_arguments(parser)
    parser.add_argument(
        "--check", action="store_true", help="exit with 1 when a backend misses the aim"
    )
    args = parser.parse_args(argv)
    print(f"aim: channel/raw throughput ratio >= {AIM} on {' and '.join(AIM_BACKENDS)}")
    try:
        report = _bench.run(
            args.backends,
            spec=args.spec,
            workload=workload_from_args(args),
            rows=args.rows or _bench.ROWS,
            progress=lambda line: print(f"  {line}", file=sys.stderr, flush=True),
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except _bench.BenchError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    print()
    print(_bench.format_table(report))
    print()
    missed = False
    for result in report.results:
        if result.backend not in AIM_BACKENDS or result.ratio is None:
            continue
        met = result.ratio >= AIM
        missed |= not met
        verdict = "meets the aim" if met else f"BELOW the aim of {AIM}"
        print(f"{result.spec}: ratio {result.ratio:.2f} {verdict}")
    return 1 if missed and args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
