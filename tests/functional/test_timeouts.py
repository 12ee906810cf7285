"""A test blocked on a lock or a slow statement fails with a message; no hang."""

from tests.support import SERVER_TARGETS, FunctionalTest, each_target

# What each server says, and what the plugin adds, for the scenario's two tests.
EXPECTED = {
    "postgresql": ("canceling statement due to lock timeout", "waited longer than lock-timeout (300 ms)",
                   "canceling statement due to statement timeout"),
    "mysql": ("(1205, 'Lock wait timeout exceeded",
              "waited longer than lock-timeout (300 ms, rounded up to whole seconds)",
              "(1969, 'Query execution was interrupted (max_statement_time exceeded)')"),
}


class TestTimeouts(FunctionalTest):
    @each_target(*SERVER_TARGETS)
    def test_lock_and_statement_timeouts_explained(self, target):
        run = self.run_scenario("timeouts", target=target, expect=1, timeout=60)
        for text in EXPECTED[target.split("+")[0]]:
            self.assertIn(text, run.stderr)
        # the 5 s sleep was cancelled by the 2 s statement timeout
        self.assertIn("ran longer than statement-timeout (2000 ms)", run.stderr)
        self.assertRegex(run.stderr, r"test_still_usable .* ok")
        self.assertIn("FAILED (errors=2)", run.stderr)
