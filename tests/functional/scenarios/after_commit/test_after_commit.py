"""after_commit callbacks fire at the app's commit, as in production, and
never for a rolled-back order; the same calls with real commits (the
oracle) leave the same outbox and rows."""

import unittest

from mailer_app import outbox, place_order
from scenario_models import items

from nose2_sqltx import DatabaseTest, real_commits


class TestAfterCommit(DatabaseTest, unittest.TestCase):
    def setUp(self):
        outbox.clear()

    def run_orders(self):
        place_order("kept")
        place_order("dropped", fail=True)
        return list(outbox), items(self.connection)

    def test_callbacks_fire_at_the_apps_commit(self):
        self.assertEqual(self.run_orders(), (["mail for kept"], ["kept"]))

    @real_commits
    def test_the_same_with_real_commits(self):
        self.assertEqual(self.run_orders(), (["mail for kept"], ["kept"]))

    def test_rows_are_rolled_back_the_callbacks_are_not_replayed(self):
        self.assertEqual(items(self.connection), [])
        self.assertEqual(outbox, [])


class TestCaptureOnCommitCallbacks(DatabaseTest, unittest.TestCase):
    def setUp(self):
        outbox.clear()

    def test_held_back_then_run_by_the_test(self):
        with self.captureOnCommitCallbacks() as callbacks:
            place_order("kept")
            place_order("dropped", fail=True)
        self.assertEqual((len(callbacks), outbox), (1, []))  # the commit's callback, held back
        self.assertEqual(items(self.connection), ["kept"])
        callbacks[0]()
        self.assertEqual(outbox, ["mail for kept"])

    def test_executed_at_the_commit_and_listed(self):
        with self.captureOnCommitCallbacks(execute=True) as callbacks:
            place_order("kept")
        self.assertEqual((len(callbacks), outbox), (1, ["mail for kept"]))

    def test_outside_the_block_nothing_is_held_back(self):
        with self.captureOnCommitCallbacks() as callbacks:
            pass
        place_order("after")
        self.assertEqual((callbacks, outbox), ([], ["mail for after"]))
