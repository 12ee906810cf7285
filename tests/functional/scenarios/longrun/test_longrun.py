"""A long run of tests that each write 100 rows (rolled back after the
test) and count them. On PostgreSQL every test also looks up how large the
table has grown (rolled-back rows stay in it as dead tuples until the run
is built afresh). The last test prints the largest size seen and the
median time between test starts over the first and the last WINDOW tests
(for bench/soak.py: time is measured there, not asserted here)."""

import itertools
import os
import statistics
import time
import unittest

from scenario_models import Item
from sqlalchemy import func, select, text

from nose2_sqltx import DatabaseTest

TESTS = int(os.environ.get("LONGRUN_TESTS", "20000"))
WINDOW = min(1000, TESTS // 4)
ROWS = [{"name": f"row {n}"} for n in range(100)]
STARTS = []
SIZES = []


class TestLongRun(DatabaseTest, unittest.TestCase):
    @classmethod
    def setUpTestData(cls):
        # Class data: it must be there in every test, also after the run is built afresh.
        cls.marker = Item(name="class row")
        cls.session.add(cls.marker)
        cls.session.commit()

    def setUp(self):
        STARTS.append(time.perf_counter())


def make(i):
    def test(self):
        self.assertEqual(self.marker.name, "class row")
        self.connection.execute(Item.__table__.insert(), ROWS)
        # the class's row and this test's, none of an earlier test's
        self.assertEqual(self.connection.execute(select(func.count()).select_from(Item)).scalar_one(), 101)
        if self.connection.dialect.name == "postgresql":
            SIZES.append(self.connection.execute(text("SELECT pg_total_relation_size('sqltx_item')")).scalar_one())
    return test


for _i in range(TESTS):
    setattr(TestLongRun, f"test_{_i:06d}", make(_i))


class TestZReport(DatabaseTest, unittest.TestCase):
    def test_report(self):
        gaps = [b - a for a, b in itertools.pairwise(STARTS)]
        first, last = statistics.median(gaps[:WINDOW]), statistics.median(gaps[-WINDOW:])
        print(f"\nmedian ms per test, first {WINDOW}: {first * 1000:.3f}, last {WINDOW}: {last * 1000:.3f}, "
              f"ratio {last / first:.2f}")
        if SIZES:
            print(f"largest sqltx_item: {max(SIZES)} bytes, after {len(SIZES)} tests")
