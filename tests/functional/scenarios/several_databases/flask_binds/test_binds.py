"""Flask-SQLAlchemy's SQLALCHEMY_BINDS: the bind's engine goes to the run's
database of the same name, db.session writes to both, each test undone in both."""

import unittest

from binds_app import Report, counts, create_app, db, sell
from sqlalchemy import select

from nose2_sqltx import DatabaseTest


class TestBinds(DatabaseTest, unittest.TestCase):
    def setUp(self):
        self.app = create_app()
        context = self.app.app_context()
        context.push()
        self.addCleanup(context.pop)

    def test_a_sale_reaches_both_databases(self):
        sell("book")
        self.assertEqual(counts(), (1, 1, 1, 1))
        analytics = self.databases["analytics"].session
        self.assertEqual(analytics.scalars(select(Report.line)).all(), ["sold book"])

    def test_b_the_next_test_sees_neither(self):
        self.assertEqual(counts(), (0, 0, 0, 0))

    def test_c_the_bind_engine_is_the_analytics_run(self):
        engine = db.engines["analytics"]
        self.assertEqual(engine.url.database, self.databases["analytics"].engine.url.database)
        self.assertNotEqual(engine.url.database, db.engine.url.database)
