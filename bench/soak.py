#!/usr/bin/env python3
"""The 20,000-test soak and the long run, each with its control, on a throwaway server.

1. tests/functional/scenarios/soak through nose2: --tests DatabaseTests, each
   writing and committing; the locks held by the test connection are sampled
   every 500 tests.
2. The control: SQLAlchemy's plain begin_nested() + write + rollback() per
   "test", on default server settings, until the server gives up.
3. The long run: tests/functional/scenarios/longrun through nose2, --tests
   DatabaseTests that each write 100 rows and count them; the median time
   per test over the first and the last 1,000.
4. Its control: the same statements in one transaction, a savepoint per
   "test", nothing built afresh; at most 5,000 of them, since each scans
   all the rows the earlier ones left.

    python bench/soak.py --tests 20000
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, func, select, text

from nose2_sqltx import TemporaryPostgres


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=20000)
    args = parser.parse_args()
    scenario = ROOT / "tests" / "functional" / "scenarios" / "soak"
    with TemporaryPostgres() as pg:
        dsn = pg.url.render_as_string(hide_password=False)
        # The throwaway server's database is "postgres": let the production guard pass it.
        env = {**os.environ, "SQLTX_DSN": dsn, "SQLTX_ALLOW_DATABASE": "postgres", "SOAK_TESTS": str(args.tests),
               "PYTHONPATH": os.pathsep.join([str(ROOT), str(scenario.parent / "common")])}
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "nose2"], cwd=scenario, env=env,
                              capture_output=True, text=True, timeout=3600)
        elapsed = time.perf_counter() - started
        locks = re.search(r"every 500 tests: \[([\d, ]+)\]", proc.stdout)
        status = proc.stderr.strip().splitlines()[-2] if proc.stderr.strip() else "?"
        if locks:
            counts = [int(n) for n in locks.group(1).split(",")]
            print(f"plugin: {args.tests} tests + 1 check in {elapsed:.1f}s through nose2, {status}; locks held "
                  f"by the test connection, every 500 tests: min {min(counts)}, max {max(counts)}")
        else:
            print(f"plugin run failed:\n{proc.stderr[-2000:]}")
        engine = create_engine(pg.url)
        count = 0
        with engine.connect() as conn:
            conn.execute(text("CREATE TEMP TABLE soak (x int)"))
            try:
                while count < 100_000:
                    nested = conn.begin_nested()
                    conn.execute(text("INSERT INTO soak VALUES (1)"))
                    nested.rollback()
                    count += 1
                outcome = "did not fail"
            except Exception as exc:  # noqa: BLE001 - the control's failure, whatever it is, is the result
                outcome = "failed: " + str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            conn.rollback()
        engine.dispose()
        print(f"control (begin_nested + rollback, default settings): after {count} tests {outcome}")
        long_run(pg, env, args.tests)
    return 0


#: how many tests the long run's control runs (each scans every row the earlier ones left)
CONTROL_TESTS = 5000


def long_run(pg: TemporaryPostgres, env: dict[str, str], tests: int) -> None:
    scenario = ROOT / "tests" / "functional" / "scenarios" / "longrun"
    proc = subprocess.run([sys.executable, "-m", "nose2"], cwd=scenario, env={**env, "LONGRUN_TESTS": str(tests)},
                          capture_output=True, text=True, timeout=3600)
    found = re.search(r"median ms per test, first (\d+): ([\d.]+), last \d+: ([\d.]+), ratio ([\d.]+)", proc.stdout)
    rebuilt = re.search(r"built afresh (\d+) time", proc.stderr)
    if found is None:
        print(f"long run failed:\n{proc.stderr[-2000:]}")
        return
    window, first, last, ratio = found.groups()
    print(f"long run: {tests} tests that each write 100 rows and count them; median ms per test, first {window}: "
          f"{first}, last {window}: {last} (x{ratio}); built afresh {rebuilt.group(1) if rebuilt else 0} times")
    # The control: the same work in one transaction, a savepoint per test.
    engine = create_engine(pg.url)
    rows = [{"name": f"row {n}"} for n in range(100)]
    gaps: list[float] = []
    with engine.connect() as conn:
        item = Table("sqltx_item", MetaData(), Column("id", Integer, primary_key=True), Column("name", String(50)))
        item.create(conn)
        insert = item.insert()  # as the scenario's: one statement for the 100 rows
        count = select(func.count()).select_from(item)
        conn.exec_driver_sql("SAVEPOINT test")  # one savepoint, rolled back to and kept, as the plugin does
        for _ in range(min(tests, CONTROL_TESTS)):
            started = time.perf_counter()
            conn.execute(insert, rows)
            conn.execute(count).scalar_one()
            conn.exec_driver_sql("ROLLBACK TO SAVEPOINT test")
            gaps.append(time.perf_counter() - started)
        conn.rollback()
    engine.dispose()
    n = min(1000, len(gaps) // 4)
    first_c, last_c = statistics.median(gaps[:n]) * 1000, statistics.median(gaps[-n:]) * 1000
    print(f"control ({len(gaps)} tests in one transaction, a savepoint per test, nothing built afresh): median ms "
          f"per test, first {n}: {first_c:.3f}, last {n}: {last_c:.3f} (x{last_c / first_c:.2f})")


if __name__ == "__main__":
    sys.exit(main())
