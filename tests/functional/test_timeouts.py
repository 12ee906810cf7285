"""A test blocked on a lock or a slow statement fails with a message; no hang."""

from tests.support import DRIVERS, FunctionalTest


class TestTimeouts(FunctionalTest):
    def test_lock_and_statement_timeouts_explained(self):
        for driver in DRIVERS:
            with self.subTest(driver=driver):
                run = self.run_scenario("timeouts", driver=driver, expect=1, timeout=60)
                # pg_sleep(5) was cancelled by the 1 s statement timeout:
                self.assertIn("canceling statement due to statement timeout", run.stderr)
                self.assertIn("waited longer than lock-timeout (300 ms)", run.stderr)
                self.assertIn("ran longer than statement-timeout (1000 ms)", run.stderr)
                self.assertRegex(run.stderr, r"test_still_usable .* ok")
                self.assertIn("FAILED (errors=2)", run.stderr)
