import unittest

from scenario_models import Item, items, references
from sqlalchemy import text

from nose2_sqltx import DatabaseTest


class TestFailures(DatabaseTest, unittest.TestCase):
    def setUp(self):
        self.assertEqual(items(self.connection), [], "an earlier test leaked")
        self.assertEqual(references(self.connection), 2)

    def test_1_fails_after_commit(self):
        self.session.add(Item(name="failed"))
        self.session.commit()
        self.fail("on purpose")

    def test_2_database_error_left_unhandled(self):
        self.session.add(Item(name="errored"))
        self.session.flush()
        self.connection.execute(text("SELECT * FROM sqltx_no_such_table"))

    def test_3_exception_after_uncommitted_write(self):
        self.session.add(Item(name="raised"))
        self.session.flush()
        raise RuntimeError("on purpose")

    def test_4_clean(self):
        self.session.add(Item(name="ok"))
        self.session.commit()
        self.assertEqual(items(self.connection), ["ok"])

    def test_5_cleanup_error(self):
        self.addCleanup(lambda: 1 / 0)
        self.session.add(Item(name="cleanup"))
        self.session.commit()


class TestBrokenClassData(DatabaseTest, unittest.TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.session.add(Item(name="half made"))
        cls.session.flush()
        raise RuntimeError("the class data broke on purpose")

    def test_never_runs(self):
        pass
