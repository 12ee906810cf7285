"""Code under test ends one database's transaction (a raw COMMIT): that test
fails, and every database of the run is built afresh together, the class's
data made once in each (its set-up writes to both)."""

import unittest

from shop import Customer, Event, Order, seed
from sqlalchemy import select, text

from nose2_sqltx import DatabaseTest


class TestEndedInOne(DatabaseTest, unittest.TestCase):
    @classmethod
    def setUpTestData(cls):
        seed(cls.session, cls.databases["analytics"].session)

    def setUp(self):
        analytics = self.databases["analytics"].session
        self.assertEqual(self.session.scalars(select(Customer.name)).all(), ["ada"], "class data lost or doubled")
        self.assertEqual(self.session.scalars(select(Order)).all(), [], "a test's order leaked")
        self.assertEqual(analytics.scalars(select(Event.kind)).all(), ["seed"], "class data lost or doubled")

    def test_1_commit_in_analytics(self):
        analytics = self.databases["analytics"].connection
        analytics.execute(text("INSERT INTO event (kind) VALUES ('raw')"))
        self.connection.execute(text("INSERT INTO orders (customer_id, item) VALUES (1, 'raw')"))
        analytics.execute(text("COMMIT"))

    def test_2_after_it(self):
        pass

    def test_3_commit_in_the_run_database(self):
        self.databases["analytics"].connection.execute(text("INSERT INTO event (kind) VALUES ('raw')"))
        self.connection.execute(text("INSERT INTO orders (customer_id, item) VALUES (1, 'raw')"))
        self.connection.execute(text("COMMIT"))

    def test_4_after_that(self):
        pass
