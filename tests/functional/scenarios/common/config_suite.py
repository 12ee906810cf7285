"""The config_files scenarios' one test class: the section's schema and fixtures, whichever file holds it."""

import unittest

from scenario_models import Item, items, references

from nose2_sqltx import DatabaseTest


class TestConfigured(DatabaseTest, unittest.TestCase):
    def test_1_the_sections_schema_and_fixtures(self):
        self.session.add(Item(name="one"))
        self.session.commit()
        self.assertEqual(items(self.connection), ["one"])
        self.assertEqual(references(self.connection), 2)

    def test_2_isolated(self):
        self.assertEqual(items(self.connection), [])
