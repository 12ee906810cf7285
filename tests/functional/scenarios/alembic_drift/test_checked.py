import unittest

from matching_models import Shelf
from sqlalchemy import select

from nose2_sqltx import DatabaseTest


class TestCheckedMigrations(DatabaseTest, unittest.TestCase):
    def test_the_migrated_schema_serves_the_models(self):
        self.assertEqual(self.session.scalars(select(Shelf.label)).all(), ["seeded by a migration"])
        self.session.add(Shelf(id=2, label="new"))
        self.session.commit()
        self.assertEqual(self.session.get(Shelf, 2).position, 0)
