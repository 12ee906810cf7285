"""only-database-tests: tests that are not DatabaseTests may not use the
database, unless marked. Tests named test_refused_* fail on purpose."""

import unittest

from stray_app import add_item, item_names

import nose2_sqltx
from nose2_sqltx import DatabaseTest, allow_database


class TestPlain(unittest.TestCase):
    def test_without_the_database_passes(self):
        self.assertEqual(sum([1, 2]), 3)

    def test_refused_through_the_app_engine(self):
        add_item("stray")

    def test_refused_even_when_swallowed(self):
        try:
            item_names()
        except Exception:  # swallowed: the end of the test reports it anyway
            pass

    def test_refused_through_the_run_connection(self):
        nose2_sqltx.current().connection.exec_driver_sql("SELECT 1")

    @allow_database
    def test_marked_itself(self):
        add_item("marked test")
        self.assertEqual(item_names(), ["marked test"])


@allow_database
class TestAllowed(unittest.TestCase):
    def test_isolated_as_before(self):
        add_item("allowed")
        self.assertEqual(item_names(), ["allowed"])

    def test_starts_empty(self):
        self.assertEqual(item_names(), [])


class TestDatabaseTest(DatabaseTest, unittest.TestCase):
    def test_may_use_the_database(self):
        add_item("database test")
        self.assertEqual(item_names(), ["database test"])
