import unittest

from scenario_models import references
from sqlalchemy import create_engine, text

from nose2_sqltx import DatabaseTest, unwatched


class TestTimeouts(DatabaseTest, unittest.TestCase):
    def other_connection(self):
        """A connection outside the test transaction, to the run's own database."""
        # unwatched: a deliberate second connection, whose writes the test undoes
        other = unwatched(create_engine(self.engine.url)).connect()
        self.addCleanup(other.engine.dispose)
        self.addCleanup(other.close)
        return other

    def test_lock_held_elsewhere(self):
        other = self.other_connection()
        if self.engine.dialect.name == "postgresql":
            other.execute(text("SELECT pg_advisory_lock(424242)"))
            self.addCleanup(other.execute, text("SELECT pg_advisory_unlock(424242)"))
            self.connection.execute(text("SELECT pg_advisory_xact_lock(424242)"))
        else:  # MySQL/MariaDB: the other transaction's uncommitted row locks its key
            other.execute(text("INSERT INTO sqltx_item (id, name) VALUES (999, 'other')"))
            self.addCleanup(other.rollback)
            self.connection.execute(text("INSERT INTO sqltx_item (id, name) VALUES (999, 'mine')"))

    def test_slow_statement(self):
        sleep = {"postgresql": "SELECT pg_sleep(5)"}.get(self.engine.dialect.name, "SELECT SLEEP(5)")
        self.connection.execute(text(sleep))

    def test_still_usable(self):
        self.assertEqual(references(self.connection), 2)
