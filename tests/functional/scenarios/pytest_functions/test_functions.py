"""Function tests under pytest: each in a transaction of its own, through
the fixtures or the app's own (redirected) engine."""

import unittest

import app
import pytest
from scenario_models import Item, items, references
from sqlalchemy import create_engine, insert

from nose2_sqltx import DatabaseTest, real_commits, unwatched


def test_1_session_commit_is_a_savepoint(sqltx_session):
    sqltx_session.add(Item(name="one"))
    sqltx_session.commit()
    assert items(sqltx_session.connection()) == ["one"]


def test_2_isolated_with_the_fixtures_rows(sqltx_connection):
    assert items(sqltx_connection) == []
    assert references(sqltx_connection) == 2


def test_3_the_apps_engine_is_the_tests_transaction(sqltx_engine):
    with app.engine.begin() as conn:
        conn.execute(insert(Item).values(name="app"))
    with sqltx_engine.connect() as conn:
        assert items(conn) == ["app"]


def test_4_a_test_without_the_fixtures_is_isolated_too():
    with app.engine.begin() as conn:
        assert items(conn) == []
        conn.execute(insert(Item).values(name="plain"))


@pytest.fixture
def two_items(sqltx_session):
    sqltx_session.add_all([Item(name="a"), Item(name="b")])
    sqltx_session.commit()
    yield
    # the test's transaction is still there for the fixture's own teardown
    assert len(items(sqltx_session.connection())) >= 2


def test_5_a_function_fixture_writes_in_the_test(two_items, sqltx_connection):
    assert items(sqltx_connection) == ["a", "b"]


@pytest.fixture(scope="module")
def module_rows():
    with app.engine.begin() as conn:
        conn.execute(insert(Item).values(name="module"))


def test_6_a_module_fixture_that_writes_is_refused(module_rows):
    raise AssertionError("never runs: its fixture is refused")


def test_7_nothing_left(sqltx_connection):
    assert items(sqltx_connection) == []


@real_commits
def test_8_real_commits(sqltx_engine):
    with sqltx_engine.begin() as conn:
        conn.execute(insert(Item).values(name="committed"))
    other = unwatched(create_engine(sqltx_engine.url))
    try:
        with other.connect() as conn:
            assert items(conn) == ["committed"]  # really committed: another connection sees it
    finally:
        other.dispose()


def test_9_after_real_commits(sqltx_connection):
    assert items(sqltx_connection) == []
    assert references(sqltx_connection) == 2


class TestClassInTheSameRun(DatabaseTest, unittest.TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.session.add(Item(name="class"))
        cls.session.commit()

    def test_class_data_and_own_rows(self):
        self.session.add(Item(name="mine"))
        self.session.commit()
        self.assertEqual(items(self.connection), ["class", "mine"])

    def test_class_data_only(self):
        self.assertEqual(items(self.connection), ["class"])


def test_zz_nothing_left_after_the_class(sqltx_connection):
    assert items(sqltx_connection) == []
