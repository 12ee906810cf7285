"""Many tests in one run: savepoints must not pile up, locks must stay flat."""

import os
import unittest

from scenario_models import Item
from sqlalchemy import text

from nose2_sqltx import DatabaseTest

TESTS = int(os.environ.get("SOAK_TESTS", "20000"))
SAMPLE_EVERY = 500
LOCKS = []


class TestSoak(DatabaseTest, unittest.TestCase):
    pass


def make(i):
    def test(self):
        # A write gives the test's subtransaction an XID and a lock of its own.
        self.connection.execute(Item.__table__.insert().values(name=str(i)))
        self.connection.commit()
        if i % SAMPLE_EVERY == 0:
            LOCKS.append(self.connection.execute(
                text("SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid()")).scalar_one())
    return test


for _i in range(TESTS):
    setattr(TestSoak, f"test_{_i:06d}", make(_i))


class TestZLocks(DatabaseTest, unittest.TestCase):
    def test_locks_flat(self):
        print(f"\nlocks held by the test connection, every {SAMPLE_EVERY} tests: {LOCKS}")
        self.assertGreaterEqual(len(LOCKS), 2)
        self.assertLessEqual(max(LOCKS) - min(LOCKS), 2, LOCKS)
