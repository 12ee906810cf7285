"""The run's backend is terminated in the middle of a test: every later
error says the connection was lost, never that a test ended the transaction."""

import os
import unittest

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from nose2_sqltx import DatabaseTest, unwatched


class TestLost(DatabaseTest, unittest.TestCase):
    def test_1_backend_terminated(self):
        pid = self.connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        admin = unwatched(create_engine(os.environ["SQLTX_DSN"], poolclass=NullPool))  # a connection of its own
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        admin.dispose()
        self.connection.execute(text("SELECT 1"))

    def test_2_after_the_loss(self):
        pass
