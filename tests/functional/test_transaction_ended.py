"""Raw transaction-control SQL: detected, reported against the test, repaired."""

from tests.support import TARGETS, FunctionalTest

FIX = "instead of executing COMMIT or ROLLBACK as SQL"


class TestTransactionEnded(FunctionalTest):
    def test_raw_commit_and_rollback_fail_the_test_and_the_run_goes_on(self):
        for target in TARGETS:
            with self.subTest(target=target):
                # assertDatabaseUnchanged (in run_scenario) proves the committed
                # tables were dropped again.
                run = self.run_scenario("ended", target=target, expect=1)
                err = run.stderr
                for name in ("test_1_raw_commit", "test_3_raw_rollback",
                             "test_5_commit_through_foreign_cursor", "test_raw_commit_in_plain_test"):
                    self.assertRegex(err, rf"{name} .* ERROR")
                for name in ("test_2_after_commit", "test_4_after_rollback", "test_6_after_foreign_cursor"):
                    self.assertRegex(err, rf"{name} .* ok")
                self.assertIn("the statement 'COMMIT' ended the test transaction (the run's work up to then "
                              "was committed; nose2-sqltx dropped the tables it had created", err)
                self.assertIn("the statement 'ROLLBACK' ended the test transaction (the run's transaction is gone", err)
                self.assertIn("a statement nose2-sqltx did not see", err)
                # tearDownModule's COMMIT in the run's own scope: the run's error
                self.assertIn("ERROR: nose2-sqltx (end of run)", err)
                self.assertIn("code under test ended the run's transaction 5 time(s)", err)
                self.assertEqual(err.count(FIX), 5, err)
                self.assertIn("FAILED (errors=5)", err)
