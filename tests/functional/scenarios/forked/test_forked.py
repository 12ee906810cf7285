"""A test whose code forks: the child cannot use the run's connection, and
nothing it does (using it, closing it, exiting) touches the parent's test
transaction."""

import multiprocessing
import os
import signal
import time
import unittest

from scenario_models import Item
from sqlalchemy import func, insert, select

from nose2_sqltx import DatabaseTest


def _in_child(engine, write):
    """What the child tried, and how it went (one line)."""
    try:
        engine.dispose(close=False)  # SQLAlchemy's documented recipe for a forked child
        with engine.connect() as conn:
            if write:
                conn.execute(insert(Item).values(name="child"))
                conn.commit()
            else:
                conn.execute(select(func.count()).select_from(Item)).scalar()
        return "no error"
    except Exception as exc:  # reported to the parent, which asserts on it
        return f"{type(exc).__name__}: {exc}"


def _report(queue, engine, write):
    queue.put(_in_child(engine, write))


class TestForked(DatabaseTest, unittest.TestCase):
    def setUp(self):
        self.session.add(Item(name="parent"))
        self.session.flush()  # uncommitted: must survive whatever the child does

    def assertParentIntact(self):
        self.assertEqual(self.session.scalar(select(func.count()).where(Item.name == "parent")), 1)
        self.assertEqual(self.session.scalar(select(func.count()).where(Item.name == "child")), 0)

    def test_os_fork_child_is_refused_and_its_exit_closes_nothing_of_the_parent(self):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            outcome = _in_child(self.engine, write=True)
            os.write(write, outcome.encode())
            # What the driver does when the child's interpreter exits and the
            # connection object goes: close it, at the driver's level.
            dbapi = self.session.connection().connection.dbapi_connection
            type(dbapi).__mro__[2].close(dbapi)
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            outcome = pipe.read()
        _, status = os.waitpid(pid, 0)
        self.assertEqual(status, 0)
        self.assertIn("ForkedProcessError: process", outcome)
        self.assertIn("was forked from the test run", outcome)
        self.assertParentIntact()

    def test_multiprocessing_child_is_refused(self):
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_report, args=(queue, self.engine, False))
        child.start()
        outcome = queue.get(timeout=30)
        child.join(30)
        self.assertIn("ForkedProcessError", outcome)
        self.assertParentIntact()

    def test_a_signal_to_the_child_does_not_cancel_the_parents_statement(self):
        # The child inherits the signal plumbing that cancels the run's
        # statement on Ctrl-C and SIGTERM: its own signals must stay its own.
        pid = os.fork()
        if pid == 0:
            try:
                time.sleep(0.3)  # the parent is in its statement now
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)
            finally:
                os._exit(0)  # whatever the signal raised here, the child ends here
        try:
            took = self.connection.exec_driver_sql(ONE_SECOND[self.engine.dialect.name]).scalar()
        finally:
            os.waitpid(pid, 0)
        self.assertIsNotNone(took)
        self.assertParentIntact()


#: per database: a statement that runs for about a second
ONE_SECOND = {
    "postgresql": "SELECT pg_sleep(1) IS NULL",
    "mysql": "SELECT SLEEP(1)",
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 4000000) "
              "SELECT count(*) FROM c",
}
