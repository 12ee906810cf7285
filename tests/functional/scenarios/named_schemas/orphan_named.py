"""A run killed after code under test committed: the run's schema and its
stand-in for billing become permanent; the next run must drop both."""

import os
import signal
import unittest

from named_models import open_ledger

from nose2_sqltx import DatabaseTest


class TestKilled(DatabaseTest, unittest.TestCase):
    def test_commits_for_real_then_dies(self):
        open_ledger("committed by a raw COMMIT", 1)
        self.connection.exec_driver_sql("COMMIT")
        os.kill(os.getpid(), signal.SIGKILL)
