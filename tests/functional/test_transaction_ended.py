"""Raw transaction-control SQL: detected, reported against the test, repaired;
and a lost connection, which is never mistaken for it."""

import re

from tests.support import FunctionalTest, each_target

FIX = "instead of executing COMMIT or ROLLBACK as SQL"


class TestTransactionEnded(FunctionalTest):
    @each_target()
    def test_raw_commit_and_rollback_fail_the_test_and_the_run_goes_on(self, target):
        # assertDatabaseUnchanged (in run_scenario) proves the committed
        # tables were dropped again.
        run = self.run_scenario("ended", target=target, expect=1)
        err = run.stderr
        for name in ("test_1_raw_commit", "test_3_raw_rollback", "test_5_commit_through_foreign_cursor",
                     "test_7_commit_then_more_sql", "test_raw_commit_in_plain_test"):
            self.assertRegex(err, rf"{name} .* ERROR")
            self.assertEqual(err.count(f"ERROR: {name} "), 1, f"{name}: one error, not two:\n{err}")
        for name in ("test_2_after_commit", "test_4_after_rollback", "test_6_after_foreign_cursor",
                     "test_8_after_the_refusal"):
            self.assertRegex(err, rf"{name} .* ok")
        self.assertIn("refused to run more SQL: the statement 'COMMIT' ended the test transaction earlier in this "
                      "test; when the test ends, nose2-sqltx drops what that committed and rebuilds", err)
        self.assertIn("the statement 'COMMIT' ended the test transaction (the run's work up to then "
                      "was committed; nose2-sqltx dropped the tables it had created", err)
        self.assertIn("the statement 'ROLLBACK' ended the test transaction (the run's transaction is gone", err)
        self.assertIn("a statement nose2-sqltx did not see", err)
        # tearDownModule's COMMIT in the run's own scope: the run's error,
        # which must not claim a rebuild (nothing runs after it)
        end = re.search(r"ERROR: nose2-sqltx \(end of run\)\n-+\n(.*?)\n\n", err, re.S)
        self.assertIsNotNone(end, err)
        self.assertIn("TransactionEndedError: the statement 'COMMIT' ended the test transaction", end.group(1))
        self.assertNotIn("rebuilt", end.group(1))
        self.assertIn("rebuilt the schema", err.split("ERROR: nose2-sqltx (end of run)")[0])
        self.assertIn("code under test ended the run's transaction 6 time(s)", err)
        self.assertEqual(err.count(FIX), 6, err)
        self.assertIn("FAILED (errors=6)", err)


class TestConnectionLost(FunctionalTest):
    @each_target("postgresql+psycopg2", "postgresql+psycopg", "mysql+pymysql", "mysql+mysqldb")
    def test_a_terminated_backend_is_called_a_lost_connection_and_ends_the_run(self, target):
        run = self.run_scenario("lost", target=target, expect=1)
        err = run.stderr
        # the test where it happened, once; no later test, class set-up or end of run blames anything
        self.assertRegex(err, r"test_1_backend_terminated .* ERROR")
        self.assertIn("Ran 1 test", err)
        self.assertIn("FAILED (errors=1)", err)
        self.assertEqual(err.count(f"nose2-sqltx: the connection to {target}://"), 1, err)
        self.assertIn("; the server rolled back the run's transaction when the connection dropped", err)
        reason = {"postgresql+psycopg2": "(server closed the connection unexpectedly)",
                  "postgresql+psycopg": "(terminating connection due to administrator command)",
                  "mysql+pymysql": "Lost connection to MySQL server during query",
                  "mysql+mysqldb": "was lost ("}[target]
        self.assertIn(reason, err)
        self.assertIn("; the connection was lost, see the error above; the server rolled back the run's work", err)
        for wrong in ("test_2_after_the_loss", "test_never_run", "_ErrorHolder", "end of run", "all rolled back",
                      "ended the test transaction", "TransactionEndedError", "Exception terminating connection"):
            self.assertNotIn(wrong, err)
