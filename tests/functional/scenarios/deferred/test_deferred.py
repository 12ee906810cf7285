"""Deferred constraints are checked at the app's commit, as in production
(on the app's own engine, whose set-up turns SQLite's foreign keys on); what
the steps did goes to $ORACLE_OUT for the functional test."""

import json
import os
import unittest

from deferred_ops import play
from models import child, engine, parent

from nose2_sqltx import DatabaseTest


class TestDeferred(DatabaseTest, unittest.TestCase):
    def test_deferred_constraints_at_commit(self):
        seen = play(engine, parent, child)
        with open(os.environ["ORACLE_OUT"], "w") as out:
            json.dump(seen, out)
        self.assertEqual(seen[2], "IntegrityError", seen)

    def test_the_next_test_starts_clean(self):
        self.assertEqual(self.session.execute(child.select()).all(), [])
