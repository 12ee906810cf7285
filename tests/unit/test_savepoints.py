"""The savepoint state machine: which statements app transaction control
becomes, in which round trips. No database: the machine's output is SQL,
and these tests pin it statement by statement."""

import unittest

from nose2_sqltx.errors import TransactionEndedError
from nose2_sqltx.savepoints import ACTIVE, IDLE, INERROR, INTRANS, SavepointConnection, reported


class Recorder(SavepointConnection):
    """A savepoint connection whose driver records what it is sent
    (one list entry per round trip) and reports a settable status."""

    def __init__(self, one_statement_per_call: bool = False) -> None:
        self.sent: list[str] = []
        self.status = INTRANS
        self.real: list[str] = []
        self._sqltx_one_statement_per_call = one_statement_per_call

    def _sqltx_exec(self, sql: str) -> None:
        self.sent.append(sql)

    def _sqltx_status(self) -> int:
        return self.status

    def _sqltx_real_commit(self) -> None:
        self.real.append("commit")

    def _sqltx_real_rollback(self) -> None:
        self.real.append("rollback")

    def _sqltx_real_close(self) -> None:
        self.real.append("close")

    # -- what app code does ------------------------------------------------
    def statement(self, sql: str = "INSERT INTO t VALUES (1)", status: int = INTRANS) -> None:
        """A statement through one of the driver's cursors."""
        reported(self, sql, lambda: setattr(self, "status", status))

    def take(self) -> list[str]:
        sent, self.sent = self.sent, []
        return sent


class StateMachineTest(unittest.TestCase):
    def setUp(self):
        self.conn = Recorder()
        self.conn.sqltx_arm()
        self.assertEqual(self.conn.take(), ["SAVEPOINT sqltx_tx0"])


class TestCommitAndRollback(StateMachineTest):
    def test_first_commit_sets_the_scopes_marker_later_ones_move_it(self):
        conn = self.conn
        conn.sqltx_push("sqltx_1")
        self.assertEqual(conn.take(), ["SAVEPOINT sqltx_1"])
        conn.statement()
        conn.commit()
        self.assertEqual(conn.take(), ["SAVEPOINT sqltx_tx1"])
        conn.statement()
        conn.commit()
        self.assertEqual(conn.take(), ["RELEASE SAVEPOINT sqltx_tx1; SAVEPOINT sqltx_tx1"])

    def test_one_statement_per_call_drivers_get_two_round_trips(self):
        conn = Recorder(one_statement_per_call=True)
        conn.sqltx_arm()
        conn.sqltx_push("sqltx_1")
        conn.statement()
        conn.commit()
        conn.statement()
        conn.commit()
        self.assertEqual(conn.take()[-2:], ["RELEASE SAVEPOINT sqltx_tx1", "SAVEPOINT sqltx_tx1"])

    def test_rollback_goes_to_the_last_commit_or_the_scope_start(self):
        conn = self.conn
        conn.sqltx_push("sqltx_1")
        conn.statement()
        conn.rollback()
        self.assertEqual(conn.take(), ["SAVEPOINT sqltx_1", "ROLLBACK TO SAVEPOINT sqltx_1"])
        conn.statement()
        conn.commit()
        conn.statement()
        conn.rollback()
        self.assertEqual(conn.take(), ["SAVEPOINT sqltx_tx1", "ROLLBACK TO SAVEPOINT sqltx_tx1"])

    def test_nothing_ran_nothing_sent(self):
        conn = self.conn
        conn.sqltx_push("sqltx_1")
        conn.take()
        conn.commit()
        conn.rollback()
        conn.close()
        self.assertEqual(conn.take(), [])

    def test_commit_of_a_failed_transaction_rolls_back(self):
        conn = self.conn
        conn.sqltx_push("sqltx_1")
        conn.take()
        conn.statement(status=INERROR)
        conn.commit()
        self.assertEqual(conn.take(), ["ROLLBACK TO SAVEPOINT sqltx_1"])

    def test_close_rolls_back_and_keeps_the_connection(self):
        conn = self.conn
        conn.sqltx_push("sqltx_1")
        conn.take()
        conn.statement()
        conn.close()
        self.assertEqual(conn.take(), ["ROLLBACK TO SAVEPOINT sqltx_1"])
        self.assertEqual(conn.real, [])

    def test_markers_are_named_per_depth(self):
        # MySQL deletes an older savepoint of the same name: no name in use twice.
        conn = self.conn
        conn.sqltx_push("sqltx_1")
        conn.statement()
        conn.commit()
        conn.sqltx_push("sqltx_2")
        conn.statement()
        conn.commit()
        self.assertEqual(conn.take(), ["SAVEPOINT sqltx_1", "SAVEPOINT sqltx_tx1", "SAVEPOINT sqltx_2",
                                       "SAVEPOINT sqltx_tx2"])

    def test_run_level_commit_uses_the_runs_marker(self):
        conn = self.conn
        conn.statement()
        conn.commit()
        conn.statement()
        conn.rollback()
        self.assertEqual(conn.take(), ["RELEASE SAVEPOINT sqltx_tx0; SAVEPOINT sqltx_tx0",
                                       "ROLLBACK TO SAVEPOINT sqltx_tx0"])


class TestSpare(StateMachineTest):
    def test_a_scope_ends_in_one_round_trip_and_the_next_starts_free(self):
        conn = self.conn
        conn.sqltx_push("sqltx_1")
        conn.statement()
        conn.sqltx_pop("sqltx_1")
        self.assertEqual(conn.take(), ["SAVEPOINT sqltx_1", "ROLLBACK TO SAVEPOINT sqltx_1"])
        conn.sqltx_push("sqltx_1")
        self.assertEqual(conn.take(), [], "the spare should be taken over for free")

    def test_work_between_scopes_is_kept_and_the_spare_set_afresh(self):
        conn = self.conn
        conn.sqltx_push("sqltx_1")
        conn.sqltx_pop("sqltx_1")
        conn.take()
        conn.statement()  # between scopes, e.g. in setUpClass
        conn.sqltx_push("sqltx_1")
        self.assertEqual(conn.take(), ["RELEASE SAVEPOINT sqltx_1; SAVEPOINT sqltx_1"])

    def test_a_commit_further_out_spoils_a_deeper_spare(self):
        conn = self.conn
        conn.sqltx_push("sqltx_1")
        conn.sqltx_push("sqltx_2")
        conn.sqltx_pop("sqltx_2")  # sqltx_2 is the spare
        conn.statement()
        conn.commit()  # the class commits: sqltx_tx1 set above the spare
        conn.take()
        conn.sqltx_push("sqltx_2")
        self.assertEqual(conn.take(), ["SAVEPOINT sqltx_2"])

    def test_a_rollback_further_out_spoils_a_deeper_spare(self):
        conn = self.conn
        conn.sqltx_push("sqltx_1")
        conn.sqltx_push("sqltx_2")
        conn.sqltx_pop("sqltx_2")
        conn.statement()
        conn.rollback()  # back to sqltx_1: the spare sqltx_2 is gone in the database
        conn.take()
        conn.sqltx_push("sqltx_2")
        self.assertEqual(conn.take(), ["SAVEPOINT sqltx_2"])


class TestAutocommitAndQuiet(StateMachineTest):
    def test_autocommit_keeps_each_statement(self):
        conn = self.conn
        conn.sqltx_push("sqltx_1")
        conn.take()
        conn.sqltx_remember("autocommit", True)
        conn.statement()
        conn.statement()
        self.assertEqual(conn.take(), ["SAVEPOINT sqltx_tx1", "RELEASE SAVEPOINT sqltx_tx1; SAVEPOINT sqltx_tx1"])
        conn.statement(status=INERROR)
        self.assertEqual(conn.take(), ["ROLLBACK TO SAVEPOINT sqltx_tx1"])

    def test_autocommit_ends_with_the_scope(self):
        conn = self.conn
        conn.sqltx_push("sqltx_1")
        conn.sqltx_remember("autocommit", True)
        conn.sqltx_pop("sqltx_1")
        conn.sqltx_push("sqltx_1")
        conn.take()
        conn.statement()
        self.assertEqual(conn.take(), [])

    def test_settings_are_remembered_and_forgotten_with_the_scope(self):
        conn = self.conn
        conn.sqltx_push("sqltx_1")
        conn.sqltx_remember("isolation_level", "SERIALIZABLE")
        self.assertEqual(conn.sqltx_remembered("isolation_level", None), "SERIALIZABLE")
        conn.sqltx_pop("sqltx_1")
        self.assertIsNone(conn.sqltx_remembered("isolation_level", None))

    def test_disarmed_means_real(self):
        conn = self.conn
        conn.sqltx_disarm()
        conn.commit()
        conn.rollback()
        conn.close()
        self.assertEqual(conn.real, ["commit", "rollback", "close"])
        self.assertEqual(conn.take(), [])


class TestEnded(StateMachineTest):
    def test_an_idle_connection_after_a_statement_means_the_run_ended(self):
        conn = self.conn
        conn.sqltx_push("sqltx_1")
        conn.statement("COMMIT", status=IDLE)
        self.assertTrue(conn.sqltx_ended)
        self.assertEqual(conn.sqltx_last_statement, "COMMIT")
        with self.assertRaises(TransactionEndedError) as caught:
            conn.statement()
        self.assertTrue(caught.exception.refused)
        conn.take()
        conn.commit()
        conn.rollback()
        self.assertEqual(conn.take(), [], "nothing may be sent once the transaction is gone")

    def test_long_statements_are_shortened(self):
        conn = self.conn
        conn.statement("COMMIT -- " + "x" * 200, status=IDLE)
        self.assertEqual(len(conn.sqltx_last_statement), 80)
        self.assertTrue(conn.sqltx_last_statement.endswith("..."))

    def test_an_active_status_is_not_an_end(self):
        conn = self.conn
        conn.statement(status=ACTIVE)
        self.assertFalse(conn.sqltx_ended)


if __name__ == "__main__":
    unittest.main()
