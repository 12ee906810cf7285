import unittest

from scenario_models import Item, items

from nose2_sqltx import DatabaseTest


class TestA_SetUpClass(DatabaseTest, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.session.add(Item(name="setUpClass"))
        cls.session.commit()

    @classmethod
    def setUpTestData(cls):
        cls.connection.execute(Item.__table__.insert().values(name="setUpTestData"))
        cls.connection.commit()

    @classmethod
    def tearDownClass(cls):
        pass  # forgets super().tearDownClass(): the class data must go anyway

    def test_1_sees_class_data_and_changes_it(self):
        self.assertEqual(items(self.connection), ["setUpClass", "setUpTestData"])
        self.session.query(Item).delete()
        self.session.commit()
        self.assertEqual(items(self.connection), [])

    def test_2_class_data_restored(self):
        self.assertEqual(items(self.session), ["setUpClass", "setUpTestData"])


class TestB_BrokenSetUpTestData(DatabaseTest, unittest.TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.session.add(Item(name="half-made"))
        cls.session.commit()
        raise RuntimeError("setUpTestData broke on purpose")

    def test_never_runs(self):
        self.fail("setUpClass failed, this must not run")


class TestC_AfterClasses(DatabaseTest, unittest.TestCase):
    def test_nothing_left(self):
        self.assertEqual(items(self.connection), [])
