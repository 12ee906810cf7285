"""nose2's multiprocess plugin (-N 2): one isolated transaction per worker,
the same results as a serial run, no hang, nothing left behind."""

import re
import threading
import unittest

from nose2_sqltx.config import Settings
from nose2_sqltx.testrun import TestRun
from tests.support import FunctionalTest, async_semantics_tests, dsn, each_target, run_nose2

MP = ("--plugin", "nose2.plugins.mp", "-N", "2")
OUTCOME = re.compile(r"\(([\w.]+)\) \.\.\. (ok|FAIL|ERROR)$", re.M)  # mp prints the name twice
TESTS = 3 * 2 * (40 + 2)  # modules x classes x (generated + two failing on purpose)


def outcomes(run):
    return dict(OUTCOME.findall(run.stderr))


class TestParallel(FunctionalTest):
    def test_same_results_as_serial_and_nothing_left(self):
        serial = self.run_scenario("parallel", expect=1, timeout=300)
        parallel = self.run_scenario("parallel", *MP, expect=1, timeout=300)  # checks the database after
        self.assertEqual(len(outcomes(serial)), TESTS, serial.stderr[-2000:])
        self.assertEqual(outcomes(parallel), outcomes(serial))
        self.assertEqual(sorted(set(outcomes(serial).values())), ["ERROR", "FAIL", "ok"])
        self.assertIn("FAILED (failures=6, errors=6)", parallel.stderr)
        self.assertIn("parallel workers, each in a schema of its own; all rolled back", parallel.stderr)

    def test_on_the_throwaway_server(self):
        # nose2's multiprocess plugin is not in the config: -N alone loads it
        run = run_nose2("parallel", "-N", "2", set_dsn=False, timeout=300)
        self.assertEqual(run.returncode, 1, run.stderr[-3000:])
        self.assertEqual(len(outcomes(run)), TESTS)
        self.assertIn("FAILED (failures=6, errors=6)", run.stderr)
        self.assertRegex(run.stderr, r"\(throwaway server, .*parallel workers")

    def test_psycopg3_workers(self):
        run = self.run_scenario("parallel", *MP, driver="psycopg", expect=1, timeout=300)
        self.assertIn("FAILED (failures=6, errors=6)", run.stderr)

    @each_target("postgresql+asyncpg", "mysql+aiomysql")
    def test_async_workers(self, target):
        # each worker's run has a loop of its own for its async connection
        shared = target.startswith("postgresql")  # MySQL's workers have a database each
        run = self.run_scenario("async_semantics", *MP, target=target, expect=1 if shared else 0, timeout=300)
        seen = outcomes(run)
        self.assertEqual(len(seen), async_semantics_tests(target), run.stderr[-3000:])
        if shared:  # real commits are refused where workers share a database (as for sync tests)
            real = "test_async.TestAsyncRealCommits.test_other_connections_see_committed_rows"
            self.assertEqual(seen.pop(real), "ERROR")
            self.assertIn("real commits failed: they cannot be given to parallel workers", run.stderr)
        self.assertEqual(set(seen.values()), {"ok"}, run.stderr[-3000:])
        self.assertIn("parallel workers, each in", run.stderr)

    def test_a_worker_that_cannot_connect_fails_every_test_it_gets(self):
        run = self.run_scenario("parallel_broken", *MP, expect=1, timeout=120)
        broken_tests = 2 * (40 + 2)
        self.assertEqual(set(outcomes(run).values()), {"ERROR"}, run.stderr[-3000:])
        self.assertEqual(len(outcomes(run)), broken_tests)
        self.assertIn("cannot connect to postgresql://postgres@127.0.0.1:1/test", run.stderr)
        self.assertIn(f"FAILED (errors={broken_tests})", run.stderr)



class TestForkSafety(unittest.TestCase):
    """nose2 forks its workers right after the main process's check of the
    database. With an async driver that check runs on a loop in a thread; a
    thread that has only just ended may still hold OpenSSL's locks in its
    exit handlers, and a worker forked then waited forever in its first TLS
    handshake (4 runs in 150 of the FastAPI example under -N 2 on a busy machine).
    The check's thread stays up, idle, until the run ends."""

    def test_the_check_thread_is_up_when_workers_fork_and_gone_at_the_end(self):
        run = TestRun(Settings.from_options([("dsn", dsn("asyncpg"))], environ={}), workers=2)
        before = set(threading.enumerate())
        run.preflight()
        try:
            started = [thread.name for thread in set(threading.enumerate()) - before]
            self.assertEqual(started, ["nose2-sqltx run loop"])
        finally:
            self.assertEqual(run.stop(), [])
        self.assertEqual(set(threading.enumerate()) - before, set())
