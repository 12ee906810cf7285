import unittest

from models import Customer, Role
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from nose2_sqltx import DatabaseTest


def driver_autocommit(raw, on):
    """Each driver's own way of switching autocommit on and off."""
    if hasattr(raw, "backup") and hasattr(raw, "in_transaction"):  # sqlite3
        raw.isolation_level = None if on else ""
    elif callable(getattr(raw, "autocommit", None)):  # PyMySQL, mysqlclient
        raw.autocommit(on)
    else:  # psycopg2, psycopg
        raw.autocommit = on


def count(conn, model=Customer):
    return conn.execute(select(func.count()).select_from(model)).scalar_one()


class TestCommitPaths(DatabaseTest, unittest.TestCase):
    def setUp(self):  # no super().setUp(): the mixin does not need it
        self.assertEqual(count(self.connection), 0, "a previous test leaked rows")

    def test_fixture_rows_visible(self):
        self.assertEqual(count(self.connection, Role), 2)

    def test_session_commit(self):
        self.session.add(Customer(name="a"))
        self.session.commit()
        self.assertEqual(count(self.connection), 1)

    def test_connection_commit(self):
        self.connection.execute(Customer.__table__.insert().values(name="b"))
        self.connection.commit()
        self.connection.rollback()
        self.assertEqual(count(self.connection), 1)

    def test_engine_begin(self):
        with self.engine.begin() as conn:
            conn.execute(Customer.__table__.insert().values(name="c"))
        with self.engine.connect() as conn:
            self.assertEqual(count(conn), 1)

    def test_raw_dbapi_commit(self):
        raw = self.engine.raw_connection()
        cur = raw.cursor()
        cur.execute("INSERT INTO sqltx_customer (name) VALUES ('d')")
        raw.commit()
        raw.close()
        self.assertEqual(count(self.connection), 1)

    def test_rollback_undoes_since_commit(self):
        s = Session(self.engine)
        s.add(Customer(name="e"))
        s.commit()
        s.add(Customer(name="f"))
        s.flush()
        s.rollback()
        self.assertEqual(s.scalar(select(func.count()).select_from(Customer)), 1)
        s.close()
        self.assertEqual(count(self.connection), 1)

    def test_uncommitted_close_discards(self):
        with self.engine.connect() as conn:
            conn.execute(Customer.__table__.insert().values(name="g"))
        self.assertEqual(count(self.connection), 0)

    def test_nested(self):
        with self.session.begin_nested():
            self.session.add(Customer(name="h"))
        nested = self.session.begin_nested()
        self.session.add(Customer(name="i"))
        nested.rollback()
        self.session.commit()
        self.assertEqual(self.session.scalars(select(Customer.name)).all(), ["h"])

    def test_connection_nested(self):
        with self.connection.begin_nested():
            self.connection.execute(Customer.__table__.insert().values(name="t"))
        nested = self.connection.begin_nested()
        self.connection.execute(Customer.__table__.insert().values(name="u"))
        nested.rollback()
        self.connection.commit()
        self.assertEqual(self.connection.execute(select(Customer.name)).scalars().all(), ["t"])

    def test_integrity_error_then_rollback(self):
        from sqlalchemy.exc import IntegrityError
        self.session.add(Customer(name="dup"))
        self.session.commit()
        self.session.add(Customer(name="dup"))
        with self.assertRaises(IntegrityError):
            self.session.commit()
        self.session.rollback()
        self.assertEqual(count(self.connection), 1)

    def test_autocommit(self):
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(Customer.__table__.insert().values(name="j"))
        conn.rollback()
        conn.close()
        self.assertEqual(count(self.connection), 1)

    def test_serializable_ignored(self):
        with self.engine.connect().execution_options(isolation_level="SERIALIZABLE") as conn:
            conn.execute(Customer.__table__.insert().values(name="k"))
            conn.commit()
        self.assertEqual(count(self.connection), 1)


class TestClassData(DatabaseTest, unittest.TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.session.add(Customer(name="shared"))
        cls.session.commit()

    def test_a_change_it(self):
        self.session.execute(text("UPDATE sqltx_customer SET name = 'changed'"))
        self.session.commit()

    def test_b_sees_original(self):
        self.assertEqual(self.session.scalars(select(Customer.name)).all(), ["shared"])


class TestZAfterClassData(DatabaseTest, unittest.TestCase):
    def test_class_data_gone(self):
        self.assertEqual(count(self.connection), 0)


class TestAppPatterns(DatabaseTest, unittest.TestCase):
    """What application code does with the engine it is handed."""

    def test_sessionmaker_and_savepoint_join_mode(self):
        from sqlalchemy.orm import sessionmaker

        factory = sessionmaker(bind=self.engine)
        with factory() as s:
            s.add(Customer(name="m"))
            s.commit()
        with Session(bind=self.engine, join_transaction_mode="create_savepoint") as s:
            s.add(Customer(name="n"))
            s.commit()
        self.assertEqual(count(self.connection), 2)

    def test_session_bound_to_connection(self):
        with Session(bind=self.connection) as s:
            s.add(Customer(name="o"))
            s.commit()
        self.assertEqual(count(self.connection), 1)

    def test_session_close_does_not_end_test(self):
        self.session.add(Customer(name="p"))
        self.session.commit()
        self.session.close()
        self.connection.close()
        self.assertEqual(count(self.session), 1)

    def test_uuid_round_trip(self):
        customer = Customer(name="q")
        self.session.add(customer)
        self.session.commit()
        token = self.session.scalar(select(Customer.token))
        self.assertEqual(token, customer.token)

    def test_raw_driver_transaction_control(self):
        raw = self.engine.raw_connection().dbapi_connection
        if hasattr(raw, "set_isolation_level"):  # psycopg2's naive call would roll back
            raw.set_isolation_level(3)
        driver_autocommit(raw, True)
        cur = raw.cursor()
        cur.execute("INSERT INTO sqltx_customer (name) VALUES ('r')")
        raw.rollback()  # autocommit: nothing to undo
        driver_autocommit(raw, False)
        cur.execute("INSERT INTO sqltx_customer (name) VALUES ('s')")
        raw.rollback()
        self.assertEqual(count(self.connection), 1)
        self.assertEqual(count(self.connection, Role), 2, "a driver call ended the run's transaction")

    def test_database_error_then_continue(self):
        from sqlalchemy.exc import DBAPIError

        with self.assertRaises(DBAPIError):
            self.connection.execute(text("SELECT * FROM no_such_table"))
        self.connection.rollback()
        self.assertEqual(count(self.connection, Role), 2)
