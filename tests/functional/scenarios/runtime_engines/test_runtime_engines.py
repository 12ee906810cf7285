"""Engines made while tests run, on the run's database, are in the test
transaction: nothing to configure, nothing left behind."""

import os
import unittest

from app_factory import App, migration_engine
from scenario_models import Item, items
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.engine import make_url

from nose2_sqltx import DatabaseTest


class TestRuntimeEngines(DatabaseTest, unittest.TestCase):
    def test_1_an_engine_made_by_the_app_commits_into_the_test(self):
        app = App()
        with app.Session() as session:
            session.add(Item(name="app"))
            session.commit()
        self.assertEqual(items(self.connection), ["app"])
        self.assertIn("INSERT INTO sqltx_item", "\n".join(self.queries))  # in the test's query log
        app.engine.dispose()

    def test_2_and_it_is_gone_after_the_test(self):
        self.assertEqual(items(self.connection), [])

    def test_3_a_nullpool_engine_keeps_the_tests_own_work(self):
        self.session.add(Item(name="mine"))
        self.session.flush()  # not committed
        engine = migration_engine()
        with engine.connect() as conn:  # closed after use by NullPool
            self.assertEqual(conn.execute(select(Item.name)).scalars().all(), ["mine"])
        with engine.begin() as conn:
            conn.execute(insert(Item).values(name="migrated"))
        self.assertEqual(items(self.session), ["migrated", "mine"])

    def test_4_a_rollback_through_it_undoes_its_own_work_only(self):
        app = App(pool_pre_ping=True)
        with app.Session() as session:
            session.add(Item(name="rolled back"))
            session.flush()
            session.rollback()
        self.assertEqual(items(self.connection), [])

    def test_5_an_engine_on_another_database_is_left_alone(self):
        url = make_url(os.environ["SQLTX_DSN"])
        # a database that exists on every such server, and is not the run's
        other = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}.get(url.get_backend_name())
        if other is None:
            self.skipTest("sqlite: another file is another database, nothing to show")
        engine = create_engine(url.set(database=other))
        self.addCleanup(engine.dispose)
        with engine.connect() as conn:  # the test's error: LeakError, refused before it ran
            conn.execute(text("CREATE TABLE sqltx_never (a int)"))
