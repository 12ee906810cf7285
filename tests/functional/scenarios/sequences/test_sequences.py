"""reset-sequences: literal ids hold in any order (the functional test runs
these in more than one); a class can opt out, and one after it starts from
the run's values again."""

import unittest

from scenario_models import Item
from sqlalchemy import select

from nose2_sqltx import DatabaseTest


def add(session, *names):
    items = [Item(name=name) for name in names]
    session.add_all(items)
    session.commit()
    return [item.id for item in items]


class TestA_Ids(DatabaseTest, unittest.TestCase):
    @classmethod
    def setUpTestData(cls):
        add(cls.session, "class")  # id 1

    def test_one(self):
        self.assertEqual(add(self.session, "a"), [2])
        self.assertEqual(self.session.get(Item, 2).name, "a")

    def test_three(self):
        self.assertEqual(add(self.session, "a", "b", "c"), [2, 3, 4])

    def test_rolled_back_insert(self):
        self.session.add(Item(name="gone"))
        self.session.flush()
        self.session.rollback()
        # PostgreSQL does not give the id back (as in production); SQLite has
        # no sequence: its next id is one more than the largest left.
        self.assertEqual(add(self.session, "a"), [2] if self.engine.dialect.name == "sqlite" else [3])


class TestB_OptOut(DatabaseTest, unittest.TestCase):
    reset_sequences = False

    def test_ids_move_on(self):
        ids = add(self.session, "x", "y")
        self.assertEqual(ids[1], ids[0] + 1)  # wherever the sequence stood; and left there


class TestC_IdsAfterAnOptOut(DatabaseTest, unittest.TestCase):
    def test_starts_from_the_runs_values(self):
        self.assertEqual(add(self.session, "a"), [1])
        self.assertEqual(self.session.scalars(select(Item.name)).all(), ["a"])
