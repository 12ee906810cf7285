"""Runs that share one database server: every run in a namespace of its
own, so that two runs of the same project at once (CI jobs, a developer's,
parallel workers) never wait on each other or see each other's tables; and
what a killed run left committed is dropped by the next run only when the
server says that run is gone."""

import os
import re
import signal
import tempfile

import psycopg2
from sqlalchemy import Column, Integer, MetaData, String, Table, Text

from nose2_sqltx import IsolatedDatabase, SetupError, TemporaryPostgres
from nose2_sqltx.dialects.postgresql import RUN_SCHEMA_COMMENT, run_lock_key
from tests.functional.test_parallel import MP, outcomes
from tests.support import (
    FunctionalTest,
    dsn,
    each_target,
    libpq_dsn,
    mysql_connect,
    run_nose2,
    slow_run,
    snapshot,
)

RUN_NAME = re.compile(r"sqltx_run_[0-9a-f]{12}")


def end_held(test, held):
    """SIGTERM to a held run, which must end by it (its transaction rolled back)."""
    held.send_signal(signal.SIGTERM)
    _, err = held.communicate(timeout=60)
    test.assertEqual(held.returncode, -signal.SIGTERM, err)


def side_connection():
    conn = psycopg2.connect(libpq_dsn())
    conn.autocommit = True
    return conn


class TestTwoRunsAtOnce(FunctionalTest):
    @each_target("postgresql+psycopg2", "postgresql+asyncpg")
    def test_a_second_run_of_the_same_tables_does_not_wait_for_the_first(self, target):
        # The held run has made the scenario models' tables inside its open
        # transaction; before every run had a schema of its own, the second
        # run's CREATE TABLE waited for the first run's to end.
        with slow_run(target=target, env={"SQLTX_ASYNC": "1"} if "asyncpg" in target else None) as held:
            self.assertEqual(snapshot().schemas, self.before.schemas, "a run's schema must be invisible to others")
            # real commits: committed in the database's own schema, where the held run has nothing
            for scenario in ("plain", "realcommits"):
                second = run_nose2(scenario, timeout=120)
                self.assertEqual(second.returncode, 0, second.output)
                self.assertIn("OK", second.stderr)
            self.assertIsNone(held.poll(), "the held run ended before the others were done")
            end_held(self, held)
        self.assertDatabaseUnchanged()


    def test_a_second_run_on_one_sqlite_file_is_one_line(self):
        # A SQLite file has one writer: the second run cannot build its schema while the first runs.
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/shared.db"
            with slow_run(env={"SQLTX_DSN": url}, set_dsn=False) as held:
                second = run_nose2("plain", env={"SQLTX_DSN": url}, timeout=120)
                end_held(self, held)
            self.assertEqual(os.listdir(tmp), [], "the runs left files behind")
        self.assertEqual(second.returncode, 2, second.output)
        lines = second.output.strip().splitlines()
        self.assertEqual(len(lines), 1, second.output)
        self.assertIn("creating the schema (metadata) failed: database is locked (another connection holds locks",
                      lines[0])
        self.assertIn("a SQLite file has one writer at a time, and a run writes from its start to its end: give "
                      "each concurrent run its own file, or use sqlite:// (in memory)", lines[0])


class TestWhatKilledRunsLeft(FunctionalTest):
    def test_a_killed_runs_committed_schema_is_dropped_by_the_next_run(self):
        killed = run_nose2("orphan")
        self.assertEqual(killed.returncode, -signal.SIGKILL, killed.output)
        left = sorted(set(snapshot().schemas) - set(self.before.schemas))
        self.assertEqual(len(left), 1, f"the raw COMMIT should have left the run's schema: {left}")
        self.assertRegex(left[0], RUN_NAME)
        self.assertIn(f"{left[0]}.sqltx_item", snapshot().tables)
        run = self.run_scenario("plain")  # and nothing left after it
        self.assertIn(f"dropped what 1 killed run(s) had left: {left[0]}", run.stderr)

    def test_a_live_runs_schema_and_schemas_not_made_by_runs_are_left_alone(self):
        alive, foreign = "sqltx_run_0123456789ab", "sqltx_run_notmadebyarun"
        holder = side_connection()  # stands for a live run on another host: it holds the schema's lock
        self.addCleanup(holder.close)
        cur = holder.cursor()
        for name in (alive, foreign):
            cur.execute(f"CREATE SCHEMA {name}")
            self.addCleanup(side_connection().cursor().execute, f"DROP SCHEMA IF EXISTS {name} CASCADE")
            cur.execute(f"CREATE TABLE {name}.kept (id integer)")
        cur.execute(f"COMMENT ON SCHEMA {alive} IS %s", (RUN_SCHEMA_COMMENT,))
        cur.execute("SELECT pg_advisory_lock(%s, %s)", run_lock_key(alive))
        self.before = snapshot()
        run = self.run_scenario("plain")
        self.assertNotIn("killed run", run.stderr)
        self.assertIn(f"{alive}.kept", snapshot().tables)
        self.assertIn(f"{foreign}.kept", snapshot().tables)
        # once the lock's connection is gone, the run that "made" it is gone too
        holder.close()
        run = run_nose2("plain")
        self.assertEqual(run.returncode, 0, run.output)
        self.assertIn(f"dropped what 1 killed run(s) had left: {alive}", run.stderr)
        self.assertNotIn(alive, snapshot().schemas)
        self.assertIn(foreign, snapshot().schemas)


class TestNamedSchemas(FunctionalTest):
    """Tables that name their schema (``billing.ledger``): each run keeps them
    in stand-ins of its own, ``sqltx_run_<random>_billing``, which SQLAlchemy's
    ``schema_translate_map`` puts into every statement it builds."""

    NAMED = ("test_named.TestNamedSchemas.test_an_engine_the_app_makes_during_the_run_finds_them_too",
             "test_named.TestNamedSchemas.test_every_test_starts_from_empty_tables",
             "test_named.TestNamedSchemas.test_sql_text_naming_them_is_refused_before_it_runs",
             "test_named.TestNamedSchemas.test_the_apps_commits_and_the_tests_session_see_the_same_rows",
             "test_named.TestNamedSchemas.test_the_tables_are_not_where_their_names_say")

    def assert_all_passed(self, run):
        self.assertEqual(outcomes(run), dict.fromkeys(self.NAMED, "ok"), run.output)

    @each_target("postgresql+psycopg2", "postgresql+psycopg")
    def test_the_app_and_the_test_see_them_and_nothing_of_them_is_left(self, target):
        # no schema billing exists, nor is one made: the stand-in needs none
        self.assertNotIn("billing", self.before.schemas)
        self.assert_all_passed(self.run_scenario("named_schemas", target=target))

    def test_runs_and_workers_at_once_never_wait_on_each_other(self):
        # Before, every run made billing.ledger itself, and the second waited
        # on the first's uncommitted CREATE TABLE until lock-timeout.
        with slow_run(scenario="named_schemas", args=["hold_named"]) as held:
            self.assertEqual(snapshot().schemas, self.before.schemas, "a run's schemas must be invisible to others")
            second = run_nose2("named_schemas", timeout=120)
            self.assert_all_passed(second)
            workers = run_nose2("named_schemas", *MP, timeout=120)
            self.assert_all_passed(workers)
            self.assertIn("parallel workers, each in a schema of its own", workers.stderr)
            self.assertIsNone(held.poll(), "the held run ended before the others were done")
            end_held(self, held)
        self.assertDatabaseUnchanged()

    def test_a_killed_runs_stand_ins_are_dropped_with_its_schema(self):
        killed = run_nose2("named_schemas", "orphan_named")
        self.assertEqual(killed.returncode, -signal.SIGKILL, killed.output)
        left = sorted(set(snapshot().schemas) - set(self.before.schemas))
        self.assertEqual(len(left), 2, f"the raw COMMIT should have left the run's schemas: {left}")
        self.assertRegex(left[0], RUN_NAME)
        self.assertEqual(left[1], f"{left[0]}_billing")
        self.assertIn(f"{left[1]}.ledger", snapshot().tables)
        run = self.run_scenario("plain")
        self.assertIn(f"dropped what 1 killed run(s) had left: {left[0]}, {left[1]}", run.stderr)


class TestNamedSchemasFromMigrations(FunctionalTest):
    """Alembic's migrations say which schemas they use only as they run: the
    schemas key lists them, and the run makes their stand-ins beforehand."""

    MIGRATED = ("test_1_writes_are_isolated", "test_2_the_next_test_sees_the_seed_alone",
                "test_text_naming_a_migrated_table_is_refused", "test_the_migrations_built_the_stand_in_and_seeded_it")

    def assert_all_passed(self, run):
        expected = {f"test_migrated.TestMigratedIntoStandIns.{name}": "ok" for name in self.MIGRATED}
        self.assertEqual(outcomes(run), expected, run.output)

    def test_listed_schemas_are_private_to_each_run(self):
        listed = ("-c", "listed.cfg")
        with slow_run(scenario="alembic_named", args=[*listed, "hold_alembic"]) as held:
            second = run_nose2("alembic_named", *listed, timeout=120)
            self.assert_all_passed(second)
            # alembic_version, and the two tables in the stand-in for billing
            self.assertIn("schema (3 tables)", second.stderr)
            self.assertIsNone(held.poll(), "the held run ended before the second was done")
            end_held(self, held)
        self.assertDatabaseUnchanged()

    def test_an_unlisted_schema_makes_a_second_run_wait_and_says_what_to_do(self):
        # without the schemas key: the migrations make billing itself, in
        # the run's transaction, and a second run waits for it to end
        with slow_run(scenario="alembic_named", args=["hold_alembic"]) as held:
            second = run_nose2("alembic_named", timeout=120)
            end_held(self, held)
        self.assertEqual(second.returncode, 2, second.output)
        lines = second.output.strip().splitlines()
        self.assertEqual(len(lines), 1, second.output)
        self.assertIn("creating the schema (alembic upgrade head) failed:", lines[0])
        self.assertIn("(another connection holds locks on these tables: most likely another test run on the same "
                      "database that has not ended; each run keeps its tables in schemas of its own, but tables in "
                      "a named schema that neither the metadata names nor the schemas key lists (with alembic, list "
                      "them there) are made where their names say by every run)", lines[0])
        self.assertDatabaseUnchanged()


class TestMySQLRunNames(FunctionalTest):
    @staticmethod
    def run_databases():
        return [name for name in snapshot().mysql_databases if name.startswith("sqltx_run_")]

    def test_a_live_runs_database_is_left_alone_by_another_run(self):
        with slow_run(target="mysql+pymysql") as held:
            [name] = self.run_databases()
            self.assertRegex(name, RUN_NAME)
            second = run_nose2("plain", target="mysql+pymysql", timeout=120)
            self.assertEqual(second.returncode, 0, second.output)
            self.assertEqual(self.run_databases(), [name], "the second run dropped a live run's database")
            end_held(self, held)
        self.assertDatabaseUnchanged()

    def test_the_run_holds_its_databases_lock(self):
        with slow_run(target="mysql+pymysql") as held:
            [name] = self.run_databases()
            conn = mysql_connect()
            try:
                cur = conn.cursor()
                cur.execute("SELECT IS_FREE_LOCK(%s)", (name,))
                self.assertEqual(cur.fetchone()[0], 0)
            finally:
                conn.close()
            end_held(self, held)
        self.assertDatabaseUnchanged()


def wide_schema(tables):
    """``tables`` tables, each with a primary key, a unique index and a text column."""
    metadata = MetaData()
    for i in range(tables):
        Table(f"sqltx_wide_{i}", metadata, Column("id", Integer, primary_key=True),
              Column("code", String(20), unique=True), Column("note", Text))
    return metadata


class TestLockTable(FunctionalTest):
    """A run holds a lock on every table, index and sequence it made until it
    ends; the server's lock table is shared by every connection."""

    def server_room(self):
        conn = side_connection()
        try:
            cur = conn.cursor()
            cur.execute("SELECT current_setting('max_locks_per_transaction')::int, "
                        "current_setting('max_connections')::int + current_setting('max_prepared_transactions')::int")
            return cur.fetchone()
        finally:
            conn.close()

    def test_workers_whose_locks_would_not_fit_are_refused_before_any_test(self):
        per, slots = self.server_room()
        metadata = wide_schema(40)
        with IsolatedDatabase(dsn(), metadata=[metadata]) as database:  # one run alone fits
            held = database.locks
        self.assertGreaterEqual(held, 40 * 4, "a table, its sequence and two indexes each, at least")
        workers = per * slots // held + 1  # one worker too many
        database = IsolatedDatabase(dsn(), metadata=[metadata], parallel=workers)
        with self.assertRaises(SetupError) as caught:
            database.start()
        message = str(caught.exception)
        self.assertIn(f"checking the server's lock table failed: this run holds {held} locks until it ends", message)
        self.assertIn(f"each of the {workers} parallel workers holds as many: {held * workers} in all", message)
        self.assertIn(f"room for {per * slots} (max_locks_per_transaction {per} x (max_connections", message)
        self.assertIn("Set max_locks_per_transaction to at least", message)
        self.assertIn("or run fewer workers", message)
        self.assertDatabaseUnchanged()

    def test_the_throwaway_server_has_room_for_many_runs_of_a_big_schema(self):
        with TemporaryPostgres() as server:
            conn = psycopg2.connect(host=server.url.query.get("host") or server.url.host, port=server.url.port,
                                    user="postgres", dbname="postgres")
            try:
                cur = conn.cursor()
                cur.execute("SHOW max_locks_per_transaction")
                self.assertEqual(cur.fetchone()[0], "512")
            finally:
                conn.close()
