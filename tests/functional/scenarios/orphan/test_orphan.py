"""A run killed after code under test committed the run's own schema: the
raw COMMIT makes the schema (and its tables) permanent, and SIGKILL leaves
no chance to drop it. The next run must find it dead and drop it."""

import os
import signal
import unittest

from scenario_models import Item

from nose2_sqltx import DatabaseTest


class TestKilled(DatabaseTest, unittest.TestCase):
    def test_commits_for_real_then_dies(self):
        self.session.add(Item(name="committed by a raw COMMIT"))
        self.session.flush()
        self.connection.exec_driver_sql("COMMIT")
        os.kill(os.getpid(), signal.SIGKILL)
