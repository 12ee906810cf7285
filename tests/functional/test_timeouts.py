"""A test blocked on a lock or a slow statement fails with a message; no hang."""

from tests.support import DRIVERS, MYSQL_TARGETS, FunctionalTest


class TestTimeouts(FunctionalTest):
    def test_lock_and_statement_timeouts_explained(self):
        for driver in DRIVERS:
            with self.subTest(driver=driver):
                run = self.run_scenario("timeouts", driver=driver, expect=1, timeout=60)
                # pg_sleep(5) was cancelled by the 2 s statement timeout:
                self.assertIn("canceling statement due to statement timeout", run.stderr)
                self.assertIn("waited longer than lock-timeout (300 ms)", run.stderr)
                self.assertIn("ran longer than statement-timeout (2000 ms)", run.stderr)
                self.assertRegex(run.stderr, r"test_still_usable .* ok")
                self.assertIn("FAILED (errors=2)", run.stderr)

    def test_on_mysql(self):
        for target in MYSQL_TARGETS:
            with self.subTest(target=target):
                run = self.run_scenario("timeouts", target=target, expect=1, timeout=60)
                self.assertIn("(1205, 'Lock wait timeout exceeded", run.stderr)
                self.assertIn("waited longer than lock-timeout (300 ms, rounded up to whole seconds)", run.stderr)
                self.assertIn("(1969, 'Query execution was interrupted (max_statement_time exceeded)')", run.stderr)
                self.assertIn("ran longer than statement-timeout (2000 ms)", run.stderr)
                self.assertRegex(run.stderr, r"test_still_usable .* ok")
                self.assertIn("FAILED (errors=2)", run.stderr)
