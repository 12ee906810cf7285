import unittest

from models import a

from nose2_sqltx import DatabaseTest


class TestCycle(DatabaseTest, unittest.TestCase):
    def test_tables_are_there(self):
        self.assertEqual(self.connection.execute(a.select()).all(), [])
