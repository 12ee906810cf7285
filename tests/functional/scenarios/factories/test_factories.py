import unittest

import factory
from factory.alchemy import SQLAlchemyModelFactory
from scenario_models import Item, items

import nose2_sqltx
from nose2_sqltx import DatabaseTest


class ItemFactory(SQLAlchemyModelFactory):
    class Meta:
        model = Item
        # The innermost scope's session: the test's in a test, the class's
        # in setUpTestData.
        sqlalchemy_session_factory = lambda: nose2_sqltx.current().session  # noqa: E731
        sqlalchemy_session_persistence = "commit"

    name = factory.Sequence(lambda n: f"item-{n:03d}")


class FlushedItemFactory(ItemFactory):
    class Meta:
        sqlalchemy_session_persistence = "flush"


class TestFactories(DatabaseTest, unittest.TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.item = ItemFactory(name="class")

    def test_1_commit_persistence_stays_in_the_test(self):
        ItemFactory.create_batch(2)
        self.assertEqual(len(items(self.connection)), 3)

    def test_2_next_test_has_the_class_item_only(self):
        self.assertEqual(items(self.connection), ["class"])

    def test_3_class_object_is_still_bound(self):
        # Expired by the class's commit, loaded again now: no "Instance is not
        # bound to a Session".
        self.assertEqual(self.item.name, "class")
        self.assertIsNotNone(self.item.id)

    def test_4_flush_persistence(self):
        FlushedItemFactory(name="flushed")
        self.assertIn("flushed", items(self.connection))
