"""Two databases in one run: each test isolated in both, class data in both,
the app's one Session over both engines, and nothing collapsed into one."""

import unittest

from shop import AnalyticsAudit, Audit, Customer, Event, Order, abandoned_order, counts, place_order, seed
from sqlalchemy import create_engine, select, text

import nose2_sqltx
from nose2_sqltx import DatabaseTest, UnknownDatabaseError


class TestTwoDatabases(DatabaseTest, unittest.TestCase):
    @classmethod
    def setUpTestData(cls):
        seed(cls.session, cls.databases["analytics"].session)

    def test_a_commit_reaches_both(self):
        place_order(1, "book")
        analytics = self.databases["analytics"].session
        self.assertEqual(self.session.scalars(select(Order.item)).all(), ["book"])
        self.assertEqual(self.session.scalars(select(Audit.who)).all(), ["customer 1"])
        self.assertEqual(analytics.scalars(select(Event.kind).order_by(Event.id)).all(), ["seed", "order book"])
        self.assertEqual(analytics.scalars(select(AnalyticsAudit.what)).all(), ["order book"])
        self.assertEqual(counts(), (1, 1, 2, 1))
        # each database's statements are in its own scope's log
        self.assertTrue(any(q.startswith("INSERT INTO event") for q in self.databases["analytics"].queries))
        self.assertFalse(any(q.startswith("INSERT INTO event") for q in self.queries), self.queries)
        self.assertTrue(any(q.startswith("INSERT INTO orders") for q in self.queries), self.queries)

    def test_b_each_test_starts_from_the_class_data(self):
        self.assertEqual(counts(), (0, 0, 1, 0))
        self.assertEqual(self.session.scalars(select(Customer.name)).all(), ["ada"])

    def test_c_a_rollback_undoes_both(self):
        abandoned_order(1, "pen")
        self.assertEqual(counts(), (0, 0, 1, 0))

    def test_d_the_databases_are_two(self):
        # the tables of the same name are each in their own database
        self.assertEqual(self.connection.execute(text("SELECT count(*) FROM customer")).scalar(), 1)
        analytics = self.databases["analytics"]
        self.assertIsNot(analytics.engine, self.engine)
        with self.assertRaises(Exception):
            with analytics.connection.begin_nested():
                analytics.connection.execute(text("SELECT count(*) FROM customer"))

    def test_e_an_engine_made_in_the_test_joins_its_database(self):
        # (the URL the app would use: the analytics database's)
        late = create_engine(self.databases["analytics"].engine.url.render_as_string(hide_password=False))
        with late.begin() as conn:
            conn.execute(text("INSERT INTO event (kind) VALUES ('late')"))
        late.dispose()
        analytics = self.databases["analytics"].session
        self.assertEqual(analytics.scalars(select(Event.kind).order_by(Event.id)).all(), ["seed", "late"])

    def test_f_an_unknown_name_is_one_line(self):
        with self.assertRaises(UnknownDatabaseError) as caught:
            self.databases["analytic"]
        self.assertEqual(str(caught.exception).splitlines(), [str(caught.exception)])
        self.assertIn("no database named 'analytic': its other databases are analytics", str(caught.exception))

    def test_g_current_scope_has_them_too(self):
        scope = nose2_sqltx.current()
        self.assertIs(scope.databases["analytics"], self.databases["analytics"])


class TestAfterTheClass(DatabaseTest, unittest.TestCase):
    def test_nothing_of_the_other_class_is_left(self):
        self.assertEqual(counts(), (0, 0, 0, 0))
        self.assertEqual(self.session.scalars(select(Customer)).all(), [])


def test_a_function_test_gets_both():
    scope = nose2_sqltx.current()
    scope.session.add(Customer(id=7, name="fn"))
    scope.session.commit()
    place_order(7, "lamp")
    assert counts() == (1, 1, 1, 1), counts()


def test_and_the_next_sees_nothing():
    assert counts() == (0, 0, 0, 0), counts()
