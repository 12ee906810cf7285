"""Two handles in one test: what production gives each, or a clear refusal."""

import unittest

from models import rows
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from nose2_sqltx import DatabaseTest, SharedTransactionError


def names(handle):
    return sorted(handle.scalars(select(rows.c.name)))


class TestTwoHandles(DatabaseTest, unittest.TestCase):
    def test_a_read_only_handle_closing_leaves_the_other_handles_work(self):
        self.session.execute(insert(rows).values(name="mine"))  # flushed, not committed
        with self.engine.connect() as conn:
            conn.execute(select(rows.c.name)).all()
        with Session(self.engine) as app:
            app.execute(select(rows.c.name)).all()
            app.commit()
        with self.engine.connect():
            pass
        self.assertEqual(names(self.session), ["mine"])
        self.session.rollback()
        self.assertEqual(names(self.session), [])

    def test_nested_savepoints_of_two_handles_with_one_name(self):
        with Session(self.engine) as a, Session(self.engine) as b:
            outer = a.begin_nested()  # sa_savepoint_1 of a
            a.execute(insert(rows).values(name="a"))
            inner = b.begin_nested()  # sa_savepoint_1 of b, inside a's
            b.execute(insert(rows).values(name="b"))
            inner.rollback()
            outer.commit()
            self.assertEqual(names(a), ["a"])
            a.commit()
        self.assertEqual(names(self.session), ["a"])

    def test_interleaved_savepoints_are_refused_naming_both_handles(self):
        with Session(self.engine) as a, Session(self.engine) as b:
            first = a.begin_nested()
            a.execute(insert(rows).values(name="a"))
            b.begin_nested()
            b.execute(insert(rows).values(name="b"))
            with self.assertRaises(SharedTransactionError) as caught:
                first.rollback()
        message = str(caught.exception)
        self.assertIn("rollback to savepoint sa_savepoint_1", message)
        self.assertIn("test_handles.py:", caught.exception.handle)
        self.assertIn("test_handles.py:", caught.exception.other)
        self.assertNotEqual(caught.exception.handle, caught.exception.other)
        self.assertIn("Fix: use one Session", message)

    def test_a_rollback_that_would_undo_the_other_handles_writes_is_refused(self):
        self.session.execute(insert(rows).values(name="mine"))
        with Session(self.engine) as app:
            app.execute(insert(rows).values(name="app"))
            with self.assertRaises(SharedTransactionError) as caught:
                app.rollback()
        self.assertIn("undo the uncommitted writes", str(caught.exception))
