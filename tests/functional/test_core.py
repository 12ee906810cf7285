"""The core without nose2: IsolatedDatabase and its scopes as context managers."""

import unittest

from sqlalchemy import Column, Integer, MetaData, String, Table, select, text

import nose2_sqltx
from nose2_sqltx import IsolatedDatabase, NotActiveError
from tests.support import DRIVERS, dsn, require_database, snapshot

metadata = MetaData()
things = Table("sqltx_core_thing", metadata, Column("id", Integer, primary_key=True), Column("name", String(20)))


def names(conn):
    return list(conn.execute(select(things.c.name).order_by(things.c.name)).scalars())


def locks(conn):
    return conn.execute(text("SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid()")).scalar_one()


class TestCore(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_database()

    def test_scopes_nest_and_roll_back(self):
        for driver in DRIVERS:
            with self.subTest(driver=driver):
                before = snapshot()
                seed = lambda conn: conn.execute(things.insert().values(name="fixture"))  # noqa: E731
                with IsolatedDatabase(dsn(driver), metadata=[metadata], fixtures=[seed]) as db:
                    self.assertIs(nose2_sqltx.current(), db.current_scope)
                    with db.scope() as outer:
                        outer.session.execute(things.insert().values(name="outer"))
                        outer.session.commit()
                        with db.scope() as inner:
                            self.assertIs(nose2_sqltx.current(), inner)
                            inner.connection.execute(things.insert().values(name="inner"))
                            inner.connection.commit()
                            self.assertEqual(names(inner.connection), ["fixture", "inner", "outer"])
                        self.assertEqual(names(outer.connection), ["fixture", "outer"])
                    with db.engine.connect() as conn:
                        self.assertEqual(names(conn), ["fixture"])
                self.assertEqual(snapshot().tables, before.tables)
                with self.assertRaises(NotActiveError):
                    nose2_sqltx.current()

    def test_exception_in_scope_still_rolls_back(self):
        with IsolatedDatabase(dsn(), metadata=[metadata]) as db:
            with self.assertRaises(ZeroDivisionError):
                with db.scope() as scope:
                    scope.connection.execute(things.insert().values(name="x"))
                    scope.connection.commit()
                    raise ZeroDivisionError("on purpose")
            self.assertEqual(names(db.current_scope.connection), [])

    def test_scopes_keep_locks_flat_where_plain_savepoints_pile_up(self):
        # The control: SQLAlchemy's begin_nested() + rollback() leaves every
        # savepoint on the stack, so the same lock count grows with each test.
        with IsolatedDatabase(dsn(), metadata=[metadata]) as db:
            conn = db.engine.connect()
            start = locks(conn)
            for i in range(300):
                nested = conn.begin_nested()
                conn.execute(things.insert().values(name=str(i)))
                nested.rollback()
            piled = locks(conn) - start
            conn.close()
            start = locks(db.current_scope.connection)
            for i in range(300):
                with db.scope() as scope:
                    scope.connection.execute(things.insert().values(name=str(i)))
                    scope.connection.commit()
            flat = locks(db.current_scope.connection) - start
        self.assertGreaterEqual(piled, 300, "the control did not pile up: the measurement is blind")
        self.assertLessEqual(flat, 1)

    def test_second_database_in_one_process_refused(self):
        with IsolatedDatabase(dsn()):
            with self.assertRaisesRegex(RuntimeError, "already running"):
                IsolatedDatabase(dsn()).start()

    def test_unreachable_server_names_masked_url(self):
        with self.assertRaises(nose2_sqltx.DatabaseUnavailableError) as caught:
            IsolatedDatabase("postgresql://u:hunter2@127.0.0.1:1/x").start()
        self.assertIn("u:***@127.0.0.1:1/x", str(caught.exception))
        self.assertNotIn("hunter2", str(caught.exception))
        with self.assertRaises(NotActiveError):
            nose2_sqltx.current()
