"""Builds the scenario's test classes: every test checks its isolation, writes,
commits, and waits on the database a little (as real tests do)."""

import os
import time
import unittest

from scenario_models import Item, items, references
from sqlalchemy import text

from nose2_sqltx import DatabaseTest

TESTS_PER_CLASS = int(os.environ.get("PARALLEL_TESTS_PER_CLASS", "40"))
WAIT_S = float(os.environ.get("PARALLEL_WAIT_S", "0.005"))
SLEEP = {"postgresql": "SELECT pg_sleep(:s)", "mysql": "SELECT SLEEP(:s)"}


def make_class(label, module):
    """A test class named Test<Label>, belonging to ``module`` (workers load tests by id)."""
    class Generated(DatabaseTest, unittest.TestCase):
        @classmethod
        def setUpTestData(cls):
            cls.session.add(Item(name=f"{label}-class"))
            cls.session.commit()

        def test_zz_fails_on_purpose(self):
            self.fail(f"{label}: on purpose")

        def test_zz_errors_on_purpose(self):
            self.connection.execute(text("SELECT * FROM no_such_table"))

    def make_test(i):
        def test(self):
            self.assertEqual(items(self.connection), [f"{label}-class"], "isolation broken")
            self.assertEqual(references(self.connection), 2)
            self.session.add(Item(name=f"{label}-{i}"))
            self.session.commit()
            sleep = SLEEP.get(self.engine.dialect.name)
            if sleep:
                self.connection.execute(text(sleep), {"s": WAIT_S})
            else:  # SQLite has no sleep of its own
                time.sleep(WAIT_S)
            self.assertEqual(len(items(self.connection)), 2)
        return test

    for i in range(TESTS_PER_CLASS):
        setattr(Generated, f"test_{i:03d}", make_test(i))
    Generated.__name__ = Generated.__qualname__ = f"Test{label.title()}"
    Generated.__module__ = module
    return Generated
