import os
import unittest

from sqlalchemy import create_engine, text

from scenario_models import references
from nose2_sqltx import DatabaseTest


class TestTimeouts(DatabaseTest, unittest.TestCase):
    def test_lock_held_elsewhere(self):
        other = create_engine(os.environ["SQLTX_DSN"]).connect()
        self.addCleanup(other.engine.dispose)
        self.addCleanup(other.close)
        other.execute(text("SELECT pg_advisory_lock(424242)"))
        self.addCleanup(other.execute, text("SELECT pg_advisory_unlock(424242)"))
        self.connection.execute(text("SELECT pg_advisory_xact_lock(424242)"))

    def test_slow_statement(self):
        self.connection.execute(text("SELECT pg_sleep(5)"))

    def test_still_usable(self):
        self.assertEqual(references(self.connection), 2)
