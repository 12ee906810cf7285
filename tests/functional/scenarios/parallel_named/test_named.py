import unittest

from nose2_sqltx import DatabaseTest


class TestNamed(DatabaseTest, unittest.TestCase):
    def test_never_runs(self):
        self.fail("the run should have stopped before any test")
