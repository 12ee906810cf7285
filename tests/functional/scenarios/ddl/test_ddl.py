"""DDL inside a test: rolled back where DDL is transactional (PostgreSQL,
SQLite), refused before it runs where it would commit (MySQL/MariaDB)."""

import os
import unittest

from scenario_models import Item, items, references
from sqlalchemy import inspect, text

from nose2_sqltx import DatabaseTest, real_commits

ON_MYSQL = os.environ["SQLTX_DSN"].startswith(("mysql", "mariadb"))


class TestDDL(DatabaseTest, unittest.TestCase):
    def setUp(self):
        self.assertEqual(items(self.connection), [], "an earlier test leaked rows")
        self.assertEqual(references(self.connection), 2, "fixture rows lost")
        self.assertNotIn("sqltx_made_in_test", inspect(self.connection).get_table_names(), "a table leaked")
        self.assertNotIn("extra", [c["name"] for c in inspect(self.connection).get_columns("sqltx_item")])

    def test_create_table(self):
        self.session.add(Item(name="before the DDL"))
        self.session.commit()
        self.connection.execute(text("CREATE TABLE sqltx_made_in_test (a INTEGER)"))

    def test_alter_table(self):
        self.connection.execute(text("ALTER TABLE sqltx_item ADD COLUMN extra INTEGER"))

    def test_drop_table(self):
        self.connection.execute(text("/* a comment first */ DROP TABLE sqltx_reference"))

    def test_temporary_table_is_fine(self):
        temporary = "TEMPORARY" if ON_MYSQL else "TEMP"
        self.connection.execute(text(f"CREATE {temporary} TABLE sqltx_scratch (a INTEGER)"))
        self.connection.execute(text("INSERT INTO sqltx_scratch (a) VALUES (1)"))
        self.assertEqual(self.connection.execute(text("SELECT count(*) FROM sqltx_scratch")).scalar_one(), 1)
        self.connection.execute(text("DROP TEMPORARY TABLE sqltx_scratch" if ON_MYSQL else "DROP TABLE sqltx_scratch"))

    @unittest.skipUnless(ON_MYSQL, "MySQL/MariaDB transaction control")
    def test_mysql_begin(self):
        self.connection.execute(text("START TRANSACTION"))

    @unittest.skipUnless(ON_MYSQL, "MySQL/MariaDB transaction control")
    def test_mysql_set_autocommit(self):
        self.connection.execute(text("SET autocommit = 1"))

    def test_zz_nothing_leaked(self):
        pass  # setUp checks


class TestDDLWithRealCommits(DatabaseTest, unittest.TestCase):
    """What ImplicitCommitError's fix offers: DDL that commits, as in production."""

    @unittest.skipIf(os.environ["SQLTX_DSN"] == "sqlite://", "an in-memory database has no other connections")
    @real_commits
    def test_real_commits_allow_ddl(self):
        self.connection.execute(text("CREATE TABLE sqltx_made_for_real (a INTEGER)"))
        self.connection.commit()
        with self.engine.connect() as other:
            self.assertIn("sqltx_made_for_real", inspect(other).get_table_names())
        self.connection.execute(text("DROP TABLE sqltx_made_for_real"))
        self.connection.commit()

    def test_zz_isolated_again(self):
        self.assertEqual(items(self.connection), [])
        self.assertEqual(references(self.connection), 2)
