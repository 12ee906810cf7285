"""Real commits in a run with two databases: both really commit together,
another connection sees the rows, the class's data is made once in each,
and the run's transactions come back in both afterwards."""

import unittest

from shop import Customer, counts, place_order, seed
from sqlalchemy import create_engine, func, select, text

from nose2_sqltx import DatabaseTest, real_commits


def seen_from_outside(scope, table):
    """The rows of ``table`` as a connection of its own sees them (committed only)."""
    outside = create_engine(scope.engine.url.render_as_string(hide_password=False))
    try:
        with outside.connect() as conn:
            return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
    finally:
        outside.dispose()


class TestRealCommits(DatabaseTest, unittest.TestCase):
    real_commits = True

    @classmethod
    def setUpTestData(cls):
        seed(cls.session, cls.databases["analytics"].session, 1, "ada")

    def test_a_commits_are_real_in_both(self):
        place_order(1, "book")
        self.assertEqual(counts(), (1, 1, 2, 1))
        self.assertEqual(seen_from_outside(self, "orders"), 1)
        self.assertEqual(seen_from_outside(self.databases["analytics"], "event"), 2)

    def test_b_the_next_test_starts_from_the_class_data(self):
        self.assertEqual(counts(), (0, 0, 1, 0))
        self.assertEqual(seen_from_outside(self.databases["analytics"], "event"), 1)
        self.assertEqual(self.session.scalars(select(Customer.name)).all(), ["ada"])


class TestOneTestWithRealCommits(DatabaseTest, unittest.TestCase):
    @classmethod
    def setUpTestData(cls):
        seed(cls.session, cls.databases["analytics"].session, 2, "bob")

    def setUp(self):
        self.assertEqual(self.session.scalar(select(func.count()).select_from(Customer)), 1, "class data")
        self.assertEqual(counts(), (0, 0, 1, 0), "class data lost or doubled, or a test's rows leaked")

    @real_commits
    def test_a_real_commits(self):
        place_order(2, "pen")
        self.assertEqual(seen_from_outside(self.databases["analytics"], "event"), 2)

    def test_b_back_in_the_transaction(self):
        place_order(2, "cup")
        self.assertEqual(counts(), (1, 1, 2, 1))

    def test_c_and_isolated_again(self):
        pass
