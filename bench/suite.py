#!/usr/bin/env python3
"""Whole-suite time through nose2: the same generated suite with three kinds
of isolation, on one throwaway server.

The suite: --tests tests over --tables tables chained by foreign keys, each
test inserting a parent and three children, one join, a commit.

  plugin       DatabaseTest (nose2-sqltx)
  create/drop  setUp: create_all, tearDown: drop_all (the naive recipe)
  delete       tables made once; tearDown: DELETE FROM every table

Rounds alternate the order. Prints wall time per run (median, p10-p90).

    python bench/suite.py --tests 1000 --tables 30 --rounds 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import spread
from nose2_sqltx import TemporaryPostgres

MODELS = '''
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, insert, select

metadata = MetaData()
for i in range({tables}):
    cols = [Column("id", Integer, primary_key=True), Column("name", String(50))]
    if i:
        cols.append(Column("parent_id", ForeignKey(f"t{{i - 1}}.id")))
    Table(f"t{{i}}", metadata, *cols)
parent, child = metadata.tables["t0"], metadata.tables["t1"]


def body(conn):
    pid = conn.execute(insert(parent).values(name="p").returning(parent.c.id)).scalar_one()
    conn.execute(insert(child), [{{"name": f"c{{j}}", "parent_id": pid}} for j in range(3)])
    conn.execute(select(parent.c.name, child.c.name).join(child, child.c.parent_id == parent.c.id)).all()
    conn.commit()
'''

KINDS = {
    "plugin": ("[unittest]\nplugins = nose2_sqltx\n\n[sqltx]\nmetadata = models:metadata\n", '''
import unittest
from models import body
from nose2_sqltx import DatabaseTest

class TestSuite(DatabaseTest, unittest.TestCase):
    pass
''', "    body(self.connection)"),
    "create/drop": ("[unittest]\n", '''
import os, unittest
from sqlalchemy import create_engine
from models import body, metadata

engine = create_engine(os.environ["BENCH_DSN"])

class TestSuite(unittest.TestCase):
    def setUp(self):
        metadata.create_all(engine)
        self.conn = engine.connect()

    def tearDown(self):
        self.conn.close()
        metadata.drop_all(engine)
''', "    body(self.conn)"),
    "delete": ("[unittest]\n", '''
import os, unittest
from sqlalchemy import create_engine
from models import body, metadata

engine = create_engine(os.environ["BENCH_DSN"])

def setUpModule():
    metadata.create_all(engine)

def tearDownModule():
    metadata.drop_all(engine)

class TestSuite(unittest.TestCase):
    def setUp(self):
        self.conn = engine.connect()

    def tearDown(self):
        for table in reversed(metadata.sorted_tables):
            self.conn.execute(table.delete())
        self.conn.commit()
        self.conn.close()
''', "    body(self.conn)"),
}


def write(directory: Path, kind: str, tests: int, tables: int) -> None:
    cfg, module, call = KINDS[kind]
    directory.mkdir()
    (directory / "unittest.cfg").write_text(cfg)
    (directory / "models.py").write_text(MODELS.format(tables=tables))
    methods = "".join(f"\ndef _t{i}(self):\n{call}\nTestSuite.test_{i:05d} = _t{i}\n" for i in range(tests))
    (directory / "test_suite.py").write_text(module + methods)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=1000)
    parser.add_argument("--tables", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory(prefix="sqltx-bench-suite-") as tmp, TemporaryPostgres() as pg:
        dsn = pg.url.render_as_string(hide_password=False)
        dirs = {}
        for n, kind in enumerate(KINDS):
            dirs[kind] = Path(tmp) / f"kind{n}"
            write(dirs[kind], kind, args.tests, args.tables)
        # The throwaway server's database is "postgres": let the production guard pass it.
        env = {**os.environ, "PYTHONPATH": str(ROOT), "SQLTX_DSN": dsn, "BENCH_DSN": dsn,
               "SQLTX_ALLOW_DATABASE": "postgres"}
        for round_no in range(args.rounds):
            order = list(KINDS) if round_no % 2 == 0 else list(reversed(KINDS))
            for kind in order:
                started = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "nose2"], cwd=dirs[kind], env=env,
                                      capture_output=True, text=True, timeout=3600)
                elapsed = time.perf_counter() - started
                if proc.returncode != 0 or f"Ran {args.tests} tests" not in proc.stderr:
                    sys.exit(f"{kind} failed:\n{proc.stderr[-3000:]}")
                times[kind].append(elapsed)
    print(f"{args.tests} tests over {args.tables} tables, {args.rounds} round(s), throwaway server; seconds per run")
    print(f"{'':12} {'median':>8} {'p10':>8} {'p90':>8} {'vs plugin':>10}")
    base = statistics.median(times["plugin"])
    for kind, values in times.items():
        median, p10, p90 = spread(values)
        print(f"{kind:12} {median:8.2f} {p10:8.2f} {p90:8.2f} {median / base:9.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
