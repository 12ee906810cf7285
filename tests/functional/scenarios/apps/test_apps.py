import unittest

import app_db
from scenario_models import Item, items, references
from sqlalchemy import create_engine, inspect, select, text

from nose2_sqltx import DatabaseTest, unwatched


class TestRedirectedEngine(DatabaseTest, unittest.TestCase):
    def test_1_app_commits_inside_the_test(self):
        app_db.add_item("a")
        app_db.add_item_raw("b")
        self.assertEqual(items(self.connection), ["a", "b"])
        self.assertEqual(app_db.item_names(), ["a", "b"])

    def test_2_and_is_rolled_back_after_it(self):
        self.assertEqual(app_db.item_names(), [])
        self.assertEqual(references(self.connection), 2)

    def test_engine_is_real_reflection_works_password_masked(self):
        engine = app_db.engine
        self.assertIn("sqltx_item", inspect(engine).get_table_names())
        self.assertEqual([c["name"] for c in inspect(engine).get_columns("sqltx_item")], ["id", "name"])
        self.assertEqual(engine.dialect.name, "postgresql")
        self.assertNotIn("app-db.invalid", str(engine.url))
        self.assertNotIn("s3cret", repr(engine))

    def test_dispose_by_the_app_keeps_the_test_transaction(self):
        app_db.add_item("kept")
        app_db.engine.dispose()
        self.assertEqual(app_db.item_names(), ["kept"])

    def test_unbound_factory_is_bound_to_the_test(self):
        with app_db.UnboundSession() as session:
            session.add(Item(name="unbound"))
            session.commit()
        self.assertEqual(items(self.connection), ["unbound"])


class TestScopedSession(DatabaseTest, unittest.TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.item = Item(name="class")
        app_db.scoped.add(cls.item)
        app_db.scoped.commit()

    def test_1_class_data_stays_bound(self):
        # The test's copy of the class's object is attached to the test's
        # Session; the app's scoped session sees what that commits.
        self.assertEqual(self.item.name, "class")
        self.item.name = "changed"
        self.session.commit()
        app_db.scoped.add(Item(name="test"))
        app_db.scoped.commit()
        self.assertEqual(items(self.connection), ["changed", "test"])
        self.assertEqual(app_db.scoped.get(Item, self.item.id).name, "changed")

    def test_2_next_test_sees_the_class_state(self):
        self.assertEqual(self.item.name, "class")
        self.assertEqual([i.name for i in app_db.scoped.scalars(select(Item))], ["class"])


class TestQueries(DatabaseTest, unittest.TestCase):
    def test_queries_log_the_tests_sql(self):
        app_db.item_names()
        self.connection.execute(text("SELECT 1"))
        self.assertEqual(len(self.queries), 2, self.queries)
        self.assertIn("FROM sqltx_item", self.queries[0])
        self.assertEqual(self.queries[1], "SELECT 1")

    def test_assert_num_queries_counts_app_sql(self):
        with self.assertNumQueries(2):
            app_db.add_item("x")  # an INSERT; the commit is not SQL
            app_db.item_names()
        self.assertNumQueries(1, app_db.item_names)

    def test_assert_num_queries_fails_with_the_list(self):
        with self.assertRaises(AssertionError) as caught:
            with self.assertNumQueries(1):
                app_db.add_item("y")
                app_db.item_names()
        self.assertIn("2 queries sent, 1 expected:\n1. INSERT INTO sqltx_item", str(caught.exception))


class TestLeaks(DatabaseTest, unittest.TestCase):
    def test_leak_raised(self):
        app_db.log_to_reporting("leaked-loud")

    def test_leak_swallowed_by_the_app(self):
        app_db.log_to_reporting_quietly("leaked-quiet")

    def test_reading_elsewhere_is_fine(self):
        with app_db.reporting_engine.connect() as conn:
            self.assertEqual(conn.execute(text("SELECT 1")).scalar(), 1)

    def test_unwatched_engine_is_let_through(self):
        other = unwatched(create_engine(str(app_db.reporting_engine.url.render_as_string(False))))
        self.addCleanup(other.dispose)
        with other.connect() as conn:
            conn.execute(text("CREATE TEMPORARY TABLE sqltx_scratch (a int)"))
            conn.rollback()
