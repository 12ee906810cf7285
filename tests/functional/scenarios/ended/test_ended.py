import unittest

from scenario_models import Item, items, references
from sqlalchemy import text

import nose2_sqltx
from nose2_sqltx import DatabaseTest


class TestEnded(DatabaseTest, unittest.TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.session.add(Item(name="class"))
        cls.session.commit()

    def setUp(self):
        self.assertEqual(items(self.connection), ["class"], "class data lost or test data leaked")
        self.assertEqual(references(self.connection), 2, "fixture data lost")

    def test_1_raw_commit(self):
        self.connection.execute(text("INSERT INTO sqltx_item (name) VALUES ('raw')"))
        self.connection.execute(text("COMMIT"))

    def test_2_after_commit(self):
        pass

    def test_3_raw_rollback(self):
        self.session.execute(text("ROLLBACK"))

    def test_4_after_rollback(self):
        pass

    def test_5_commit_through_foreign_cursor(self):
        raw = self.engine.raw_connection().dbapi_connection
        driver = self.engine.dialect.driver
        if driver == "psycopg2":
            import psycopg2.extras

            cur = raw.cursor(cursor_factory=psycopg2.extras.DictCursor)
        elif driver == "psycopg":
            import psycopg

            cur = psycopg.ClientCursor(raw)
        elif driver == "pysqlite":
            import sqlite3

            cur = sqlite3.Cursor(raw)
        elif driver == "pymysql":
            import pymysql.cursors

            cur = pymysql.cursors.DictCursor(raw)
        else:
            import MySQLdb.cursors

            cur = MySQLdb.cursors.DictCursor(raw)
        cur.execute("COMMIT")

    def test_6_after_foreign_cursor(self):
        pass

    def test_7_commit_then_more_sql(self):
        self.connection.execute(text("COMMIT"))
        self.connection.execute(text("SELECT 1"))  # refused: the test's one error

    def test_8_after_the_refusal(self):
        pass


class TestPlainEnded(unittest.TestCase):
    def test_raw_commit_in_plain_test(self):
        nose2_sqltx.current().connection.execute(text("COMMIT"))


def tearDownModule():
    # After every test: only the run's own scope is left, so this is found
    # when the run ends and reported as the run's error.
    nose2_sqltx.current().connection.execute(text("COMMIT"))
