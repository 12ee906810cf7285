#!/usr/bin/env python3
"""What real commits cost, measured side by side in one process.

On a throwaway server and a chain schema of --tables tables, each round
times, in turn: a class of --tests ordinary tests (class scope + test
scopes), the same class with ``real_commits = True`` (leave the run's
transaction, schema and class data for real, refill between tests, drop and
rebuild after), and one ``@real_commits`` test inside an ordinary class.
Each test inserts a row and commits. Prints medians and p10-p90, in ms.

    python bench/realcommits.py --rounds 15
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert

from bench.common import chain_schema, spread
from nose2_sqltx import IsolatedDatabase, TemporaryPostgres


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--tables", type=int, default=30)
    parser.add_argument("--tests", type=int, default=5)
    args = parser.parse_args()
    metadata = chain_schema(args.tables)
    first = metadata.tables["t0"]

    def a_class(db: IsolatedDatabase, class_real: bool, test_real: bool) -> None:
        def setup() -> None:
            conn = db.current_scope.connection
            conn.execute(insert(first).values(name="class"))
            conn.commit()

        with db.scope(setup, real_commits=class_real):
            for i in range(args.tests):
                with db.scope(real_commits=test_real and i == 0) as scope:
                    scope.connection.execute(insert(first).values(name=f"test {i}"))
                    scope.connection.commit()

    kinds = {"ordinary class": (False, False), "class with real_commits": (True, False),
             "ordinary class, one @real_commits test": (False, True)}
    samples: dict[str, list[float]] = {kind: [] for kind in kinds}
    with TemporaryPostgres() as pg, IsolatedDatabase(pg.url, metadata=[metadata], trusted=True) as db:
        for round_no in range(args.rounds + 1):
            order = list(kinds) if round_no % 2 == 0 else list(reversed(kinds))
            for kind in order:
                started = time.perf_counter()
                a_class(db, *kinds[kind])
                if round_no:  # the first round warms up
                    samples[kind].append((time.perf_counter() - started) * 1000)
    base = spread(samples["ordinary class"])[0]
    print(f"{args.tables} tables, {args.tests} tests per class, {args.rounds} rounds (ms per class)")
    for kind, values in samples.items():
        median, p10, p90 = spread(values)
        print(f"| {kind} | {median:.1f} ({p10:.1f}–{p90:.1f}) | {median / base:.1f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
