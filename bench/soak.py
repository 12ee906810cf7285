#!/usr/bin/env python3
"""The 20,000-test soak, and its control, on a throwaway server.

1. tests/functional/scenarios/soak through nose2: --tests DatabaseTests, each
   writing and committing; the locks held by the test connection are sampled
   every 500 tests.
2. The control: SQLAlchemy's plain begin_nested() + write + rollback() per
   "test", on default server settings, until the server gives up.

    python bench/soak.py --tests 20000
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
