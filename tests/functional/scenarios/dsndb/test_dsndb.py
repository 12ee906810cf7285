"""MySQL with create-database = false: the tables live in the DSN's database
for the run, and each test is still isolated."""

import unittest

from scenario_models import Item, items, references
from sqlalchemy import text

from nose2_sqltx import DatabaseTest


class TestInTheDsnDatabase(DatabaseTest, unittest.TestCase):
    def setUp(self):
        self.assertEqual(items(self.connection), [], "an earlier test leaked rows")
        self.assertEqual(references(self.connection), 2)

    def test_runs_in_the_dsn_database(self):
        self.assertEqual(self.connection.execute(text("SELECT DATABASE()")).scalar_one(), "test")

    def test_one(self):
        self.session.add(Item(name="one"))
        self.session.commit()

    def test_two(self):
        self.session.add(Item(name="two"))
        self.session.commit()
