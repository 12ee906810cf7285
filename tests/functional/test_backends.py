"""What differs per backend: DDL (transactional or refused), SQLite's driver
transaction mode and files, MySQL's run databases and their clean-up."""

import os
import signal
import sqlite3
import tempfile
import unittest

from sqlalchemy import create_engine, inspect, text

from nose2_sqltx import IsolatedDatabase
from tests.support import FunctionalTest, each_target, mysql_connect, mysql_dsn, run_nose2, slow_run, snapshot

MP = ("--plugin", "nose2.plugins.mp", "-N", "2")


def mysql_admin():
    conn = mysql_connect()
    conn.autocommit(True)
    return conn


class TestDDLInTests(FunctionalTest):
    @each_target()
    def test_rolled_back_where_transactional_refused_where_it_would_commit(self, target):
        if target.startswith("mysql"):
            run = self.run_scenario("ddl", target=target, expect=1)
            for name in ("create_table", "alter_table", "drop_table", "mysql_begin", "mysql_set_autocommit"):
                self.assertRegex(run.stderr, rf"test_{name} .* ERROR")
            self.assertEqual(run.stderr.count("ImplicitCommitError: refused"), 5, run.stderr)
            self.assertIn("refused 'CREATE TABLE sqltx_made_in_test (a INTEGER)': on MariaDB it commits "
                          "the open transaction implicitly", run.stderr)
            self.assertIn("Declare the table in the metadata named under [sqltx]", run.stderr)
            self.assertIn("refused 'START TRANSACTION'", run.stderr)
            self.assertRegex(run.stderr, r"test_temporary_table_is_fine .* ok")
            self.assertRegex(run.stderr, r"test_zz_nothing_leaked .* ok")
            self.assertIn("give this test real commits", run.stderr)
            self.assertRegex(run.stderr, r"test_real_commits_allow_ddl .* ok")
            self.assertIn("FAILED (errors=5)", run.stderr)
        else:
            run = self.run_scenario("ddl", target=target)
            self.assertIn("OK (skipped=3)" if target == "sqlite" else "OK (skipped=2)", run.stderr)
            if target != "sqlite":
                self.assertRegex(run.stderr, r"test_real_commits_allow_ddl .* ok")


class TestSQLite(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.path = os.path.join(tmp.name, "app.db")
        self.url = f"sqlite:///{self.path}"

    def tables(self):
        conn = sqlite3.connect(self.path)
        try:
            return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")]
        finally:
            conn.close()

    def test_the_drivers_legacy_mode_leaks_and_the_run_does_not(self):
        # The control: sqlite3's default transaction mode with SQLAlchemy's
        # begin()/begin_nested(), as pytest-flask-sqlalchemy-style fixtures do.
        engine = create_engine(self.url)
        with engine.connect() as conn:
            outer = conn.begin()
            nested = conn.begin_nested()
            conn.execute(text("CREATE TABLE leaked (a INTEGER)"))
            conn.execute(text("INSERT INTO leaked VALUES (1)"))
            nested.commit()
            outer.rollback()
        engine.dispose()
        self.assertEqual(self.tables(), ["leaked"], "the control did not leak: the comparison is blind")
        os.remove(self.path)

        with IsolatedDatabase(self.url) as db:
            with db.scope() as scope:
                conn = scope.connection
                nested = conn.begin_nested()
                conn.execute(text("CREATE TABLE leaked (a INTEGER)"))
                conn.execute(text("INSERT INTO leaked VALUES (1)"))
                nested.commit()
                conn.commit()
                conn.exec_driver_sql("INSERT INTO leaked VALUES (2)")
                raw = scope.engine.raw_connection()  # keep it: returned to the pool it rolls back
                raw.executescript("INSERT INTO leaked VALUES (3); INSERT INTO leaked VALUES (4);")
                raw.commit()
                self.assertEqual(conn.execute(text("SELECT count(*) FROM leaked")).scalar_one(), 4)
            self.assertNotIn("leaked", inspect(db.current_scope.connection).get_table_names())
        self.assertFalse(os.path.exists(self.path), "the file the run made was left behind")

    def test_an_existing_file_is_left_as_it_was(self):
        conn = sqlite3.connect(self.path)
        conn.execute("CREATE TABLE keep (a INTEGER)")
        conn.execute("INSERT INTO keep VALUES (42)")
        conn.commit()
        conn.close()
        # A table the metadata does not define: the production guard refuses
        # the file until allow-database names it.
        run = run_nose2("semantics", env={"SQLTX_DSN": self.url})
        self.assertEqual(run.returncode, 2, run.output)
        self.assertEqual(run.stderr.strip().splitlines(), [
            f"nose2-sqltx: error: refusing to run tests on {self.url}: it holds tables the configured metadata "
            "does not define (keep). Tests are rolled back, but code that escapes the test transaction writes "
            "for real, so nose2-sqltx only runs on databases that look like test databases. Point dsn at one "
            "(a name with 'test' in it, holding no other tables), or, if this database is meant for tests, add "
            "`allow-database = app.db` under [sqltx] (or set SQLTX_ALLOW_DATABASE)"])
        run = run_nose2("semantics", env={"SQLTX_DSN": self.url, "SQLTX_ALLOW_DATABASE": "app.db"})
        self.assertEqual(run.returncode, 0, run.output)
        self.assertEqual(self.tables(), ["keep"])
        conn = sqlite3.connect(self.path)
        self.assertEqual(conn.execute("SELECT a FROM keep").fetchall(), [(42,)])
        conn.close()

    def test_parallel_workers_on_a_file_are_refused(self):
        run = run_nose2("parallel", *MP, env={"SQLTX_DSN": self.url})
        self.assertEqual(run.returncode, 2, run.output)
        self.assertEqual(run.stderr.strip().splitlines(), [
            "nose2-sqltx: error: running the tests in parallel (nose2 -N) failed: parallel runs on a SQLite "
            "file would all write to one file and wait for each other's lock: use sqlite:// (in memory, one "
            "database per worker) or run without -N"])
        self.assertFalse(os.path.exists(self.path))


class TestMySQLRunDatabases(FunctionalTest):
    def run_databases(self):
        return [name for name in snapshot().mysql_databases if name.startswith("sqltx_run_")]

    def test_sigterm_drops_the_run_database(self):
        with slow_run(target="mysql+pymysql") as proc:
            self.assertEqual(len(self.run_databases()), 1, "the run made no database of its own")
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, -signal.SIGTERM, err)
        self.assertDatabaseUnchanged()

    def test_a_killed_runs_database_is_dropped_by_the_next_run(self):
        with slow_run(target="mysql+pymysql") as proc:
            left = self.run_databases()
            proc.kill()  # no clean-up at all
            proc.communicate(timeout=30)
        self.assertEqual(len(left), 1)
        self.assertEqual(self.run_databases(), left, "SIGKILL cannot clean up: the database must still be there")
        run = self.run_scenario("plain", target="mysql+pymysql")  # checks that nothing is left
        self.assertIn("OK", run.stderr)

    def test_a_database_without_the_owner_view_is_never_dropped(self):
        admin = mysql_admin()
        self.addCleanup(admin.close)
        admin.cursor().execute("CREATE DATABASE sqltx_run_999999")
        self.addCleanup(admin.cursor().execute, "DROP DATABASE IF EXISTS sqltx_run_999999")
        self.before = snapshot()
        self.run_scenario("plain", target="mysql+pymysql")
        self.assertIn("sqltx_run_999999", snapshot().mysql_databases)

    @each_target("mysql+pymysql", "mysql+mysqldb")
    def test_create_database_false_uses_the_dsn_database_and_drops_its_tables(self, target):
        run = self.run_scenario("dsndb", target=target)
        self.assertRan(run, 3)
        self.assertIn("all rolled back, the tables it created dropped", run.stderr)

    def test_create_database_false_refuses_tables_it_did_not_make(self):
        admin = mysql_admin()
        self.addCleanup(admin.close)
        admin.cursor().execute("CREATE TABLE test.sqltx_item (id INTEGER PRIMARY KEY, name VARCHAR(50))")
        self.addCleanup(admin.cursor().execute, "DROP TABLE IF EXISTS test.sqltx_item")
        admin.cursor().execute("INSERT INTO test.sqltx_item VALUES (1, 'precious')")
        self.before = snapshot()
        run = self.run_scenario("dsndb", target="mysql+pymysql", expect=2)
        self.assertEqual(len(run.output.strip().splitlines()), 1, run.output)
        self.assertIn("nose2-sqltx: error: creating the schema (metadata) failed: tables sqltx_item already "
                      "exist in mysql+pymysql://root@127.0.0.1:3306/test", run.stderr)
        cur = admin.cursor()
        cur.execute("SELECT name FROM test.sqltx_item")
        self.assertEqual(cur.fetchall(), (("precious",),))

    def test_no_right_to_create_databases_is_one_clear_line(self):
        admin = mysql_admin()
        self.addCleanup(admin.close)
        cur = admin.cursor()
        cur.execute("CREATE USER IF NOT EXISTS 'sqltx_limited'@'%' IDENTIFIED BY 'limited-pw'")
        self.addCleanup(admin.cursor().execute, "DROP USER IF EXISTS 'sqltx_limited'@'%'")
        cur.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON test.* TO 'sqltx_limited'@'%'")
        self.before = snapshot()
        url = mysql_dsn().replace("root@", "sqltx_limited:limited-pw@")
        run = run_nose2("plain", env={"SQLTX_DSN": url})
        self.assertEqual(run.returncode, 2, run.output)
        self.assertNotIn("limited-pw", run.output)
        lines = run.output.strip().splitlines()
        self.assertEqual(len(lines), 1, run.output)
        self.assertIn("creating the run's own database failed: (1044, \"Access denied for user", lines[0])
        self.assertIn("set create-database = false under [sqltx]", lines[0])
        self.assertDatabaseUnchanged()


class TestParallelOnOtherBackends(FunctionalTest):
    @each_target("mysql+pymysql", "sqlite")
    def test_each_worker_has_a_database_of_its_own(self, target):
        where = {"mysql+pymysql": "a database of its own, dropped at the end",
                 "sqlite": "an in-memory database of its own"}[target]
        run = self.run_scenario("parallel", *MP, target=target, expect=1, timeout=300)
        self.assertIn("Ran 252 tests", run.stderr)
        self.assertIn("FAILED (failures=6, errors=6)", run.stderr)
        self.assertIn(f"parallel workers, each in {where}", run.stderr)
