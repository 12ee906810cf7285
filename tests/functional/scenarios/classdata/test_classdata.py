"""Objects made in setUpTestData are each test's own, as in Django."""

import unittest

from scenario_models import Item, items

from nose2_sqltx import DatabaseTest


class TestClassData(DatabaseTest, unittest.TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.ada = Item(name="ada")
        cls.bob = Item(name="bob")
        cls.session.add_all([cls.ada, cls.bob])
        cls.session.commit()
        cls.pair = [cls.ada, cls.bob]
        cls.by_name = {"ada": cls.ada}
        cls.names = ["x"]
        cls.engine_itself = cls.engine  # cannot be copied: shared

    def test_1_changes_stay_in_the_test(self):
        self.assertEqual(self.ada.name, "ada")
        self.assertIn(self.ada, self.session)  # attached to the test's own Session
        self.assertIsNot(self.ada, type(self).ada)
        self.ada.name = "changed"
        self.names.append("y")
        self.assertIs(self.pair[0], self.ada)  # one object per row in the test's Session
        self.assertIs(self.by_name["ada"], self.ada)

    def test_2_sees_the_class_data_and_deletes_it(self):
        self.assertEqual(self.ada.name, "ada")
        self.assertEqual(self.names, ["x"])
        self.session.delete(self.ada)
        self.session.commit()
        self.assertEqual(items(self.session), ["bob"])

    def test_3_deleted_in_an_earlier_test_is_back_and_usable(self):
        self.assertEqual(self.ada.name, "ada")
        self.ada.name = "committed"
        self.session.commit()  # no "already attached to session"
        self.assertEqual(items(self.session), ["bob", "committed"])

    def test_4_not_stale_after_an_earlier_commit(self):
        self.assertEqual(self.ada.name, "ada")
        self.assertEqual([item.name for item in self.pair], ["ada", "bob"])

    def test_5_costs_nothing_until_read(self):
        with self.assertNumQueries(0):
            self.assertEqual(self.names, ["x"])
        with self.assertNumQueries(1):
            self.assertEqual(self.bob.name, "bob")
        self.assertIs(self.engine_itself, type(self).engine_itself)

    def test_6_on_the_class_it_is_what_setuptestdata_made(self):
        self.assertIs(type(self).pair[0], type(self).ada)
