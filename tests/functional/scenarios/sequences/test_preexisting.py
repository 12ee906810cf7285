"""A sequence that was in the database before the run, used by a test."""

import os
import unittest

from sqlalchemy import text

from nose2_sqltx import DatabaseTest

SEQUENCE = os.environ.get("PREEXISTING_SEQUENCE")


@unittest.skipUnless(SEQUENCE, "only when the functional test made the sequence")
class TestPreexisting(DatabaseTest, unittest.TestCase):
    reset_sequences = False  # left moved by the test: the end of the run puts it back
    def test_uses_it(self):
        values = [self.connection.execute(text(f"SELECT nextval('{SEQUENCE}')")).scalar() for _ in range(3)]
        self.assertEqual(values[2], values[0] + 2)
