"""Connections outside the test transaction that wait for its locks: each
wait ends within lock-timeout (1 s here), and in this process with
LockWaitError naming the test transaction. How long each waited goes to
$LOCKWAIT_OUT for the functional test."""

import json
import os
import subprocess
import threading
import time
import unittest

from scenario_models import Item
from sqlalchemy import create_engine, insert
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from nose2_sqltx import DatabaseTest, LockWaitError, unwatched


def record(name, seconds, outcome, start=0.0):
    """``start``: how long the waiting program took to start and connect
    (psql, a process of its own), which is in ``seconds`` but no part of the wait."""
    with open(os.environ["LOCKWAIT_OUT"], "a") as out:
        out.write(json.dumps({"name": name, "seconds": seconds, "outcome": outcome, "start": start}) + "\n")


def timed(name, step):
    started = time.monotonic()
    try:
        step()
    except LockWaitError as exc:
        outcome = "LockWaitError certain" if exc.certain else "LockWaitError likely"
        assert "test transaction of nose2-sqltx" in str(exc), str(exc)
    except Exception as exc:  # recorded for the functional test
        outcome = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    else:
        outcome = "no wait"
    record(name, round(time.monotonic() - started, 3), outcome)


class TestOtherConnections(DatabaseTest, unittest.TestCase):
    def other_engine(self):
        # A deliberate second connection to the run's own database.
        return unwatched(create_engine(self.engine.url, poolclass=NullPool))

    def test_an_engine_of_the_app_waits_for_a_row_the_test_wrote(self):
        kind = self.engine.dialect.name
        if kind == "postgresql":
            self.connection.exec_driver_sql("SELECT pg_advisory_lock(77)")
        else:
            self.session.add(Item(id=1, name="the test's"))
            self.session.flush()
        other = self.other_engine()

        def step():
            with other.connect() as conn:
                if kind == "postgresql":
                    conn.exec_driver_sql("SELECT pg_advisory_lock(77)")
                elif kind == "sqlite":  # the run's tables are not there for others: the write lock is
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                else:
                    conn.execute(insert(Item).values(id=1, name="another connection's"))

        timed("engine", step)
        other.dispose()

    def test_a_thread_waits(self):
        if self.engine.dialect.name != "postgresql":
            self.skipTest("the thread case is run on PostgreSQL")
        self.connection.exec_driver_sql("SELECT pg_advisory_lock(78)")
        other = self.other_engine()

        def step():
            with other.begin() as conn:
                conn.exec_driver_sql("SELECT pg_advisory_lock(78)")

        thread = threading.Thread(target=timed, args=("thread", step))
        thread.start()
        thread.join(30)
        other.dispose()

    def test_psql_waits(self):
        if self.engine.dialect.name != "postgresql":
            self.skipTest("psql is PostgreSQL's")
        self.connection.exec_driver_sql("SELECT pg_advisory_lock(79)")
        url = make_url(os.environ["SQLTX_DSN"]).set(drivername="postgresql")
        started = time.monotonic()
        subprocess.run(["psql", url.render_as_string(False), "-c", "SELECT 1"], capture_output=True, timeout=60)
        start = round(time.monotonic() - started, 3)
        started = time.monotonic()
        run = subprocess.run(["psql", url.render_as_string(False), "-c", "SELECT pg_advisory_lock(79)"],
                             capture_output=True, text=True, timeout=60)
        record("psql", round(time.monotonic() - started, 3), run.stderr.strip().splitlines()[0] if run.stderr else
               f"exit {run.returncode}", start)
