"""The run's connection is terminated by the server in the middle of a test:
that test's error says the connection was lost, and the run ends there."""

import os
import unittest

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from nose2_sqltx import DatabaseTest, unwatched

#: per database: the run's connection id, and how another connection ends it
WHO = {"postgresql": "SELECT pg_backend_pid()", "mysql": "SELECT CONNECTION_ID()"}
END = {"postgresql": "SELECT pg_terminate_backend({})", "mysql": "KILL {}"}


class TestLost(DatabaseTest, unittest.TestCase):
    def test_1_backend_terminated(self):
        kind = self.engine.dialect.name
        pid = self.connection.execute(text(WHO[kind])).scalar_one()
        admin = unwatched(create_engine(os.environ["SQLTX_DSN"], poolclass=NullPool))  # a connection of its own
        with admin.connect() as conn:
            conn.exec_driver_sql(END[kind].format(int(pid)))
        admin.dispose()
        self.connection.execute(text("SELECT 1"))

    def test_2_after_the_loss(self):
        pass


class TestThen(DatabaseTest, unittest.TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.connection.execute(text("SELECT 1"))

    def test_never_run(self):
        pass
