"""The benchmarks still run (tiny sizes; the figures in docs/ come from
bash scripts/bench, not from here)."""

import subprocess
import sys
import unittest

from tests.support import ROOT, clean_env


def bench(*args):
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=clean_env(), capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


class TestBenchmarksRun(unittest.TestCase):
    def test_isolation(self):
        out = bench("bench/isolation.py", "--rounds", "1", "--batch", "2", "--tables", "5")
        self.assertRegex(out, r"\| plugin \| [\d.]+ \([\d.]+–[\d.]+\) ×1\.00 \|")
        self.assertRegex(out, r"- psycopg2: 5 tables [\d.]+ ms = [\d.]+× the floor")

    def test_async_tests(self):
        out = bench("bench/async_tests.py", "--rounds", "1", "--tests", "4")
        self.assertRegex(out, r"AsyncDatabaseTest, asyncpg, body +[\d.]+ +[\d.]+ +[\d.]+")
        self.assertRegex(out, r"AsyncDatabaseTest, psycopg 3 async, own loop, scope +[\d.]+")
        self.assertRegex(out, r"IsolatedAsyncioTestCase, empty, on the run's loop +[\d.]+ +[\d.]+ +[\d.]+")
        ratio = r"(x[\d.]+|none \(the async test costs less than the empty one\))"
        self.assertRegex(out, r"AsyncDatabaseTest, asyncpg against DatabaseTest, psycopg2: isolation overhead "
                              rf"{ratio}, on the run's loop {ratio}, beyond the driver floor {ratio}, "
                              r"scope x[\d.]+, body x[\d.]+")
        self.assertRegex(out, r"driver floor, psycopg 3 async +[\d.]+ +[\d.]+ +[\d.]+")

    def test_suite(self):
        out = bench("bench/suite.py", "--tests", "10", "--tables", "5")
        self.assertRegex(out, r"create/drop +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+x")

    def test_startup(self):
        out = bench("bench/startup.py", "--rounds", "2")
        self.assertRegex(out, r"start to first test +[\d.]+")
        self.assertRegex(out, r"start to first test, schema cache +[\d.]+")

    def test_alembic_start(self):
        out = bench("bench/alembic_start.py", "--rounds", "1", "--revisions", "12", "--tables", "5")
        self.assertIn("12 Alembic revisions over 5 tables, 1 rounds", out)
        self.assertRegex(out, r"warm: start to first test +[\d.]+ +[\d.]+ +[\d.]+")
        self.assertRegex(out, r"migrations alone +[\d.]+")
        self.assertRegex(out, r"warm, schema cache: start to first test +[\d.]+")
        self.assertRegex(out, r"schema cache's replay alone +[\d.]+")

    def test_parallel(self):
        out = bench("bench/parallel.py", "--rounds", "1", "--per-class", "40,45")
        self.assertRegex(out, r"speed-up of -N 2 over serial, 252 tests \(ratio of medians\): [\d.]+x")
        self.assertRegex(out, r"speed-up of -N 2 over serial, 282 tests \(ratio of medians\): [\d.]+x")
        self.assertRegex(out, r"database from template +[\d.]+")

    def test_shared_database(self):
        out = bench("bench/shared_database.py", "--rounds", "1", "--runs", "1,2")
        self.assertRegex(out, r"\n +2 +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+x")

    def test_shards(self):
        out = bench("bench/shards.py", "--rounds", "1")
        self.assertIn("the union of the 4 shards was exactly the suite in every round", out)
        self.assertRegex(out, r"durations file +(?:[\d.]+ +){4}[\d.]+x")

    def test_soak(self):
        out = bench("bench/soak.py", "--tests", "1500")  # 3 lock samples: the scenario wants 2 or more
        self.assertRegex(out, r"plugin: 1500 tests \+ 1 check in [\d.]+s through nose2, OK")
        self.assertRegex(out, r"control \(begin_nested \+ rollback, default settings\): "
                              r"after \d+ tests failed: out of shared memory")
        self.assertRegex(out, r"long run: 1500 tests that each write 100 rows and count them; median ms per test, "
                              r"first 375: [\d.]+, last 375: [\d.]+ \(x[\d.]+\); built afresh \d+ times")
        self.assertRegex(out, r"control \(1500 tests in one transaction, a savepoint per test, nothing built "
                              r"afresh\): median ms per test, first 375: [\d.]+, last 375: [\d.]+ \(x[\d.]+\)")
        self.assertIn("usage", bench("bench/isolation.py", "--help"))
