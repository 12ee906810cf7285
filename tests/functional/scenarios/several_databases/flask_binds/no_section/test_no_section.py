"""The app (made at import, as most are) has a bind the run has no database
for: the run does not start, rather than make the bind's tables in [sqltx]'s."""

import unittest

from binds_app import create_app

from nose2_sqltx import DatabaseTest

app = create_app()


class TestNoSection(DatabaseTest, unittest.TestCase):
    def test_never_runs(self):
        raise AssertionError("the run started with the bind in the wrong database")
