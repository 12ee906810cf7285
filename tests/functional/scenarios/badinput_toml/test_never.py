import unittest

from nose2_sqltx import DatabaseTest


class TestNever(DatabaseTest, unittest.TestCase):
    def test_nothing(self):
        pass
