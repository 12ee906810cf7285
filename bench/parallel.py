#!/usr/bin/env python3
"""Serial vs nose2's multiprocess plugin (-N 2), whole runs through nose2.

The suite is tests/functional/scenarios/parallel: 3 modules and 6 classes
(with setUpTestData) of 40 tests each and two that fail on purpose (252
tests); each test writes, commits and waits 5 ms on the server, as tests of a
real app wait on their database. ``--per-class`` sizes it again (400: 2,412
tests), with the same start: the interpreter, the imports and the discovery,
which no parallel runner splits, weigh less in a longer suite. Rounds
alternate which of the two goes first, so machine drift hits both alike.
Prints medians, p10-p90 and the ratio, in seconds of wall time per run, for
each size.

    python bench/parallel.py --rounds 7                  # throwaway server, 40 tests a class
    python bench/parallel.py --rounds 5 --per-class 40,400
    SQLTX_DSN=postgresql://... python bench/parallel.py
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
MODES = {"serial": [], "-N 2": ["--plugin", "nose2.plugins.mp", "-N", "2"]}


def run(extra: list[str], per_class: int) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(SCENARIO.parent / "common")]),
           "PARALLEL_TESTS_PER_CLASS": str(per_class)}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "nose2", *extra], cwd=SCENARIO, env=env,
                          capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - started
    if f"Ran {tests(per_class)} tests" not in proc.stderr or "FAILED (failures=6, errors=6)" not in proc.stderr:
        sys.exit(f"unexpected result:\n{proc.stderr[-3000:]}")
    return elapsed


def tests(per_class: int) -> int:
    return 6 * (per_class + 2)


def place_costs(rounds: int) -> dict[str, list[float]]:
    """What giving one worker a place of its own costs, measured on the server:
    a schema made in the worker's transaction (what nose2-sqltx does), or a
    database copied from a template (created, then dropped)."""
    import psycopg2
    from sqlalchemy.engine import make_url

    costs: dict[str, list[float]] = {"schema in the transaction": [], "database from template": []}
    with benchmark_database() as (dsn, _):
        url = make_url(dsn)
        params = {"dbname": url.database, "user": url.username, "password": url.password,
                  "host": url.host or url.query.get("host"), "port": url.port or url.query.get("port")}
        conn = psycopg2.connect(**{k: v for k, v in params.items() if v})
        conn.autocommit = True
        cur = conn.cursor()
        try:
            for i in range(rounds):
                started = time.perf_counter()
                cur.execute("BEGIN; CREATE SCHEMA sqltx_bench_w; SET search_path TO sqltx_bench_w, public; ROLLBACK")
                costs["schema in the transaction"].append(time.perf_counter() - started)
                started = time.perf_counter()
                cur.execute(f"CREATE DATABASE sqltx_bench_{i} TEMPLATE template1")
                cur.execute(f"DROP DATABASE sqltx_bench_{i}")
                costs["database from template"].append(time.perf_counter() - started)
        finally:
            conn.close()
    return costs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="runs of each mode (default 7)")
    parser.add_argument("--per-class", default="40", type=sizes,
                        help="generated tests in each of the 6 classes, or sizes separated by commas (default 40)")
    args = parser.parse_args()
    where = "SQLTX_DSN" if os.environ.get("SQLTX_DSN") else "throwaway server"
    print(f"{args.rounds} rounds, {os.cpu_count()} cores, database: {where}")
    for per_class in args.per_class:
        times: dict[str, list[float]] = {mode: [] for mode in MODES}
        for i in range(args.rounds):
            order = list(MODES) if i % 2 == 0 else list(reversed(MODES))
            for mode in order:
                times[mode].append(run(MODES[mode], per_class))
        print(f"\n{tests(per_class)} tests")
        print(f"{'':8} {'median':>8} {'p10':>8} {'p90':>8}")
        for mode, values in times.items():
            median, p10, p90 = spread(values)
            print(f"{mode:8} {median:8.2f} {p10:8.2f} {p90:8.2f}")
        ratio = statistics.median(times["serial"]) / statistics.median(times["-N 2"])
        print(f"speed-up of -N 2 over serial, {tests(per_class)} tests (ratio of medians): {ratio:.2f}x")
    print("\nper worker, a place of its own (median ms):")
    for name, values in place_costs(max(args.rounds, 5)).items():
        print(f"  {name:28} {statistics.median(values) * 1000:8.1f}")
    return 0


def sizes(raw: str) -> list[int]:
    try:
        values = [int(part) for part in raw.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r}: whole numbers separated by commas, such as 40,400") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{raw!r}: each size must be 1 or more")
    return values


if __name__ == "__main__":
    sys.exit(main())
