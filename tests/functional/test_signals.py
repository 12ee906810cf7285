"""Ctrl-C and SIGTERM in the middle of a run, also while a test is blocked
in a statement: the process ends at once, as the signal would end it, with
one line that says so, and nothing is left."""

import signal
import time

from tests.support import ASYNC_TARGETS, FunctionalTest, each_target, slow_run, snapshot

#: how long the blocked statement would run without a cancel: far beyond what the tests allow
BLOCKED_FOR = 60
#: what the tests allow from the signal to the end of the process
ENDS_WITHIN = 10


class TestSignals(FunctionalTest):
    def interrupt(self, sig, target=None, block="sleep", env=None):
        with slow_run(target=target, block=block, env=env) as proc:
            if target is None:
                self.assertEqual(snapshot().sessions, 2, "the run's connection and its lock watchdog are not open")
            time.sleep(0.3)  # into the statement the test blocks in
            sent = time.monotonic()
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=BLOCKED_FOR)
            took = time.monotonic() - sent
        self.assertEqual(proc.returncode, -sig, f"did not die by {signal.Signals(sig).name}:\n{err}")
        self.assertLess(took, ENDS_WITHIN, f"the run took {took:.1f} s to stop:\n{err}")
        label = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
        self.assertIn(f"nose2-sqltx: stopped by {label} in test_signals.TestSlow.test_waits after 0 tests; "
                      "the run's transaction was rolled back\n", err)
        self.assertNotIn("Traceback", err)
        self.assertNotIn("\nOK", err)
        self.assertDatabaseUnchanged()
        return err

    def test_ctrl_c(self):
        self.interrupt(signal.SIGINT)

    def test_sigterm(self):
        self.interrupt(signal.SIGTERM)

    @each_target("postgresql+psycopg2", "postgresql+psycopg", "mysql+pymysql", "mysql+mysqldb", "sqlite-file")
    def test_sigterm_in_a_long_statement(self, target):
        self.interrupt(signal.SIGTERM, target, block="query")

    @each_target("postgresql+psycopg2", "postgresql+psycopg", "mysql+pymysql", "mysql+mysqldb", "sqlite-file")
    def test_ctrl_c_in_a_long_statement(self, target):
        self.interrupt(signal.SIGINT, target, block="query")

    @each_target(*ASYNC_TARGETS)
    def test_async_test_in_a_long_statement(self, target):
        # the statement runs on the run's loop; the test's loop waits for it
        self.interrupt(signal.SIGINT, target, block="query", env={"SQLTX_ASYNC": "1"})
        self.interrupt(signal.SIGTERM, target, block="sleep", env={"SQLTX_ASYNC": "1"})

    @each_target("postgresql+psycopg2", "postgresql+psycopg", "mysql+pymysql", "mysql+mysqldb")
    def test_sigterm_while_waiting_for_another_connections_lock(self, target):
        self.interrupt(signal.SIGTERM, target, block="lock")
