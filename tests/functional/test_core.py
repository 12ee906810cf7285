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


class TestPsycopg3PreparedStatements(unittest.TestCase):
    """psycopg 3 prepares a statement after its 5th execution; the end of a
    test must not throw that away, unless the test changed the schema."""

    @classmethod
    def setUpClass(cls):
        require_database()

    def test_prepared_statements_survive_test_scopes(self):
        with IsolatedDatabase(dsn("psycopg"), metadata=[metadata]) as db:
            for i in range(8):
                with db.scope() as scope:
                    scope.connection.execute(things.insert().values(name=str(i)))
                    scope.connection.commit()
            with db.scope() as scope:
                prepared = scope.connection.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one()
        self.assertGreaterEqual(prepared, 1, "psycopg 3 lost its prepared statements at every test's end")

    def test_schema_changes_in_a_test_do_not_leave_stale_plans(self):
        with IsolatedDatabase(dsn("psycopg")) as db:
            for columns in ("a int", "a int, b text"):
                with db.scope() as scope:
                    conn = scope.connection
                    conn.exec_driver_sql(f"CREATE TABLE sqltx_core_shape ({columns})")
                    conn.exec_driver_sql("INSERT INTO sqltx_core_shape (a) VALUES (1)")
                    for _ in range(7):  # prepared from the 5th time on
                        row = conn.exec_driver_sql("SELECT * FROM sqltx_core_shape").one()
                    self.assertEqual(len(row), columns.count(",") + 1)
