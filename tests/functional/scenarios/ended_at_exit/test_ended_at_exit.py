"""A COMMIT executed after the class's scope has ended, in the run's own:
only the end of the run can find it (under unittest: the process's end)."""

import unittest

from scenario_models import Item
from sqlalchemy import text

from nose2_sqltx import DatabaseTest


class TestCommitsAfterItsScope(DatabaseTest, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Added before super(): runs after the class's own cleanup, which ends its scope.
        cls.addClassCleanup(cls.commit_in_the_runs_scope)
        super().setUpClass()

    @classmethod
    def commit_in_the_runs_scope(cls):
        cls.connection.execute(text("COMMIT"))

    def test_passes(self):
        self.session.add(Item(name="one"))
        self.session.commit()
