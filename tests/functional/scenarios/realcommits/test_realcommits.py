import select as selectors
import unittest

from scenario_models import Item, items, references
from sqlalchemy import create_engine, insert, inspect, text
from sqlalchemy.pool import NullPool

import nose2_sqltx
from nose2_sqltx import DatabaseTest, real_commits, unwatched


class TestRealCommits(DatabaseTest, unittest.TestCase):
    real_commits = True

    @classmethod
    def setUpTestData(cls):
        cls.session.add(Item(name="class"))
        cls.session.commit()

    def test_1_other_connections_see_committed_work(self):
        with self.engine.begin() as writer:
            writer.execute(insert(Item).values(name="one"))
        with self.engine.connect() as reader:  # another connection
            self.assertEqual(items(reader), ["class", "one"])
            self.assertEqual(references(reader), 2)

    def test_2_each_test_starts_from_fixtures_and_class_data(self):
        self.assertEqual(items(self.connection), ["class"])
        self.assertEqual(references(self.connection), 2)

    def test_3_listen_notify(self):
        listener = self.engine.connect()
        self.addCleanup(listener.close)
        listener.execute(text("LISTEN sqltx_channel"))
        listener.commit()
        with self.engine.begin() as sender:
            sender.execute(text("NOTIFY sqltx_channel, 'hello'"))
        raw = listener.connection.dbapi_connection
        selectors.select([raw], [], [], 5)
        raw.poll()
        self.assertEqual([n.payload for n in raw.notifies], ["hello"])


class TestOneTestWithRealCommits(DatabaseTest, unittest.TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.session.add(Item(name="mixed-class"))
        cls.session.commit()

    def test_1_isolated_as_usual(self):
        self.session.add(Item(name="isolated"))
        self.session.commit()
        self.assertEqual(items(self.connection), ["isolated", "mixed-class"])

    @real_commits
    def test_2_create_index_concurrently(self):
        self.assertEqual(items(self.connection), ["mixed-class"])  # the class data, made for real
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("CREATE INDEX CONCURRENTLY sqltx_item_name ON sqltx_item (name)"))
        self.assertEqual([i["name"] for i in inspect(self.engine).get_indexes("sqltx_item")], ["sqltx_item_name"])

    def test_3_back_in_the_test_transaction(self):
        self.assertEqual(items(self.connection), ["mixed-class"])
        self.assertEqual(inspect(self.connection).get_indexes("sqltx_item"), [])
        self.session.add(Item(name="three"))
        self.session.commit()
        self.assertEqual(items(self.connection), ["mixed-class", "three"])

    def test_4_and_isolated_again(self):
        self.assertEqual(items(self.connection), ["mixed-class"])


class TestPlainWithRealCommits(unittest.TestCase):
    """Plain TestCases (not DatabaseTests) that ask for real commits get them."""

    real_commits = True

    def test_other_connections_see_committed_work(self):
        engine = nose2_sqltx.current().engine
        with engine.begin() as writer:
            writer.execute(insert(Item).values(name="plain class"))
        self.assertEqual(other_connection_items(engine), ["plain class"])


class TestPlainOneTest(unittest.TestCase):
    @real_commits
    def test_this_one_commits(self):
        engine = nose2_sqltx.current().engine
        with engine.begin() as writer:
            writer.execute(insert(Item).values(name="plain test"))
        self.assertEqual(other_connection_items(engine), ["plain test"])

    def test_this_one_is_isolated(self):
        with nose2_sqltx.current().engine.connect() as conn:
            self.assertEqual(items(conn), [])


def other_connection_items(engine):
    """What a connection of its own (not the run's) sees: only committed rows."""
    other = unwatched(create_engine(engine.url, poolclass=NullPool))
    try:
        with other.connect() as reader:
            return items(reader)
    finally:
        other.dispose()
