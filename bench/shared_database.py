#!/usr/bin/env python3
"""Concurrent runs on one PostgreSQL database: k = 1, 2, 4 runs at once.

Each run is a whole nose2 run of tests/functional/scenarios/parallel (252
tests; each writes, commits and waits 5 ms on the server, as tests of a real
app wait on their database), all of the same project on the same database,
as CI jobs and developers share one. Every run builds its schema in a schema
of its own, so no run waits on another's locks. Throughput is tests per
second of wall time for the k runs together; rounds alternate the order of
the k values. Prints medians, p10-p90 and the ratio against one run alone.

    python bench/shared_database.py --rounds 5           # throwaway server
    SQLTX_DSN=postgresql://... python bench/shared_database.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import benchmark_database, spread

SCENARIO = ROOT / "tests" / "functional" / "scenarios" / "parallel"
TESTS = 252


def batch(k: int, dsn: str, extra: dict[str, str]) -> float:
    """Wall time of ``k`` runs started together (``extra``: environment variables for them)."""
    env = {**os.environ, "SQLTX_DSN": dsn, **extra,
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(SCENARIO.parent / "common")])}
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "nose2"], cwd=SCENARIO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(k)]
    outputs = [proc.communicate(timeout=600)[1] for proc in procs]
    elapsed = time.perf_counter() - started
    for err in outputs:
        if f"Ran {TESTS} tests" not in err or "FAILED (failures=6, errors=6)" not in err:
            sys.exit(f"unexpected result:\n{err[-3000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="batches of each k (default 5)")
    parser.add_argument("--runs", default="1,2,4", help="how many runs at once (default 1,2,4)")
    args = parser.parse_args()
    ks = [int(k) for k in args.runs.split(",")]
    times: dict[int, list[float]] = {k: [] for k in ks}
    with benchmark_database() as (dsn, extra):
        for i in range(args.rounds):
            for k in ks if i % 2 == 0 else list(reversed(ks)):
                times[k].append(batch(k, dsn, extra))
    where = "SQLTX_DSN" if os.environ.get("SQLTX_DSN") else "throwaway server"
    print(f"{TESTS} tests per run, {args.rounds} rounds, {os.cpu_count()} cores, one database: {where}")
    print(f"{'runs':>4} {'wall s':>8} {'p10':>8} {'p90':>8} {'tests/s':>9} {'x one run':>10}")
    alone = TESTS / statistics.median(times[ks[0]]) if ks[0] == 1 else None
    for k, values in times.items():
        median, p10, p90 = spread(values)
        throughput = k * TESTS / median
        ratio = f"{throughput / alone:9.2f}x" if alone else ""
        print(f"{k:>4} {median:8.2f} {p10:8.2f} {p90:8.2f} {throughput:9.1f} {ratio:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
