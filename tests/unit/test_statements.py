"""Statement classification and script splitting: pure functions the
isolation depends on, pinned case by case (no database)."""

import unittest

from nose2_sqltx.dialects.mysql_statements import ends_transaction, implicit_commit_fix, rolls_back
from nose2_sqltx.dialects.postgresql import stales_prepared_statements
from nose2_sqltx.dialects.sqlite import split_script
from nose2_sqltx.leaks import is_write


class TestWrites(unittest.TestCase):
    def test_writes_by_their_first_word(self):
        for sql in ("INSERT INTO t VALUES (1)", "  update t set a = 1", "DELETE FROM t", "CREATE TABLE t (a int)",
                    "/* app */ DROP TABLE t", "-- note\nTRUNCATE t", "WITH x AS (SELECT 1) DELETE FROM t",
                    "ALTER TABLE t ADD b int", "COPY t FROM STDIN", "merge into t using s on true when matched "
                    "then delete", "CALL proc()", "DO $$ BEGIN END $$", "REFRESH MATERIALIZED VIEW v"):
            with self.subTest(sql=sql):
                self.assertTrue(is_write(sql, None))

    def test_reads(self):
        for sql in ("SELECT 1", "select * from t for update", "WITH x AS (SELECT 1) SELECT * FROM x", "SHOW tables",
                    "EXPLAIN SELECT 1", "SET lock_timeout = 0", "/* INSERT */ SELECT 1", "SELECT 'INSERT'"):
            with self.subTest(sql=sql):
                self.assertFalse(is_write(sql, None))


class TestMySQLImplicitCommits(unittest.TestCase):
    def test_ddl_and_transaction_control_are_refused_with_their_fix(self):
        ddl = ("CREATE TABLE t (a int)", "alter table t add b int", "DROP TABLE t", "TRUNCATE t", "RENAME TABLE a TO b",
               "LOCK TABLES t WRITE", "UNLOCK TABLES", "GRANT SELECT ON t TO u", "/* x */ CREATE INDEX i ON t (a)",
               "-- c\nOPTIMIZE TABLE t", "# c\nANALYZE TABLE t", "FLUSH PRIVILEGES")
        for sql in ddl:
            with self.subTest(sql=sql):
                self.assertIn("Declare the table in the metadata", implicit_commit_fix(sql) or "")
        for sql in ("BEGIN", "START TRANSACTION", "XA START 'x'", "SET autocommit = 1", "SET SESSION autocommit=0",
                    "set @@autocommit = 1", "SET @@session.autocommit = 1"):
            with self.subTest(sql=sql):
                self.assertIn("instead of transaction control as SQL", implicit_commit_fix(sql) or "")

    def test_what_does_not_commit_is_let_through(self):
        for sql in ("SELECT 1", "INSERT INTO t VALUES (1)", "CREATE TEMPORARY TABLE t (a int)",
                    "DROP TEMPORARY TABLE t", "CREATE OR REPLACE TEMPORARY TABLE t (a int)", "SAVEPOINT s",
                    "ROLLBACK TO SAVEPOINT s", "SET SESSION innodb_lock_wait_timeout = 1", "COMMIT", b"SELECT 1",
                    "SELECT 'CREATE TABLE'"):
            with self.subTest(sql=sql):
                self.assertIsNone(implicit_commit_fix(sql))

    def test_ends_transaction(self):
        for sql in ("COMMIT", "rollback", "  COMMIT WORK", "/* c */ ROLLBACK", b"COMMIT"):
            with self.subTest(sql=sql):
                self.assertTrue(ends_transaction(sql))
        for sql in ("ROLLBACK TO SAVEPOINT s", "ROLLBACK WORK TO s", "rollback to s", "SELECT 1", "COMMITTED"):
            with self.subTest(sql=sql):
                self.assertFalse(ends_transaction(sql))

    def test_rolls_back(self):
        self.assertTrue(rolls_back("ROLLBACK"))
        self.assertTrue(rolls_back("/* x */ rollback work"))
        for sql in ("COMMIT", "ROLLBACK TO SAVEPOINT s", "SELECT 1"):
            with self.subTest(sql=sql):
                self.assertFalse(rolls_back(sql))


class TestPreparedStatements(unittest.TestCase):
    def test_command_statuses_that_can_stale_psycopg3s_prepared_statements(self):
        for status in ("CREATE TABLE", "DROP INDEX", "ALTER TABLE", "TRUNCATE TABLE", "ROLLBACK", "DISCARD ALL",
                       "DEALLOCATE ALL"):
            with self.subTest(status=status):
                self.assertTrue(stales_prepared_statements(status))
        for status in ("INSERT 0 1", "SELECT 3", "SAVEPOINT", "RELEASE", "UPDATE 2", "DEALLOCATE", ""):
            with self.subTest(status=status):
                self.assertFalse(stales_prepared_statements(status))


class TestScriptSplitting(unittest.TestCase):
    def test_statements_as_sqlite_finds_them(self):
        cases = {
            "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);": ["INSERT INTO t VALUES (1);",
                                                                    "INSERT INTO t VALUES (2);"],
            "INSERT INTO t VALUES ('a;b'); SELECT 1": ["INSERT INTO t VALUES ('a;b');", "SELECT 1;"],
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 1; DELETE FROM u; END; SELECT 2;": [
                "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = 1; DELETE FROM u; END;", "SELECT 2;"],
            " ;; \n ; ": [],
            "SELECT 1 -- done": ["SELECT 1 -- done;"],
        }
        for script, statements in cases.items():
            with self.subTest(script=script):
                self.assertEqual(split_script(script), statements)


if __name__ == "__main__":
    unittest.main()
