"""Several databases in one run: ``[sqltx]`` plus ``[sqltx:analytics]``.

Each scenario run is followed by a look at both databases: no table, schema
or session of the run may be left in either. The second PostgreSQL database
is made by this module and dropped after it.
"""

import os
import signal
import tempfile
import time
from pathlib import Path

import psycopg2
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.functional.test_server import server_processes
from tests.support import (
    PYTHONPATH,
    SCENARIOS,
    FunctionalTest,
    dsn,
    libpq_dsn,
    mysql_dsn,
    require_database,
    run_nose2,
    slow_run,
)

SCENARIO = "several_databases"
#: the second PostgreSQL database, on the test server
SECOND = "test_sqltx_analytics"
#: where the scenarios' subdirectories find the app (shop.py, binds_app.py)
APP_PATH = os.pathsep.join([PYTHONPATH, str(SCENARIOS / SCENARIO), str(SCENARIOS / SCENARIO / "flask_binds")])


def second_dsn(driver="psycopg2"):
    return make_url(dsn(driver)).set(database=SECOND).render_as_string(hide_password=False)


def _admin(statement):
    conn = psycopg2.connect(libpq_dsn())
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def _catalog(database):
    """The tables and schemas of ``database`` on the test server."""
    conn = psycopg2.connect(libpq_dsn(), dbname=database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT schemaname || '.' || tablename FROM pg_tables "
                        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")
            tables = [r[0] for r in cur.fetchall()]
            cur.execute("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                        "AND nspname <> 'information_schema' ORDER BY 1")
            schemas = [r[0] for r in cur.fetchall()]
    finally:
        conn.close()
    return tables, schemas


class DatabasesTest(FunctionalTest):
    @classmethod
    def setUpClass(cls):
        require_database()
        _admin(f'DROP DATABASE IF EXISTS "{SECOND}"')
        _admin(f'CREATE DATABASE "{SECOND}"')
        cls.addClassCleanup(_admin, f'DROP DATABASE IF EXISTS "{SECOND}" WITH (FORCE)')

    def run_two(self, scenario=SCENARIO, *args, main=None, analytics=None, expect=0, runner="nose2", env=None):
        """A scenario run with ``main`` as SQLTX_DSN and ``analytics`` as
        SQLTX_DSN_ANALYTICS (default: the test database and the second one)."""
        full = {"SQLTX_DSN": main or dsn(), "SQLTX_DSN_ANALYTICS": analytics or second_dsn(), "PYTHONPATH": APP_PATH,
                **(env or {})}
        run = run_nose2(scenario, *args, env=full, runner=runner)
        self.assertEqual(run.returncode, expect, f"{run.runner} exited {run.returncode}:\n{run.output}")
        self.assertDatabaseUnchanged()
        self.assertEqual(_catalog(SECOND), ([], ["public"]), "tables or schemas left in the second database")
        return run


class TestTwoDatabases(DatabasesTest):
    """The scenario's tests check each test's isolation in both databases,
    class data in both, the app's Session over both engines, and that each
    database keeps its own table named audit."""

    def test_two_postgresql_databases(self):
        for driver in ("psycopg2", "psycopg"):
            with self.subTest(driver=driver):
                run = self.run_two(main=dsn(driver), analytics=second_dsn(driver))
                self.assertRan(run, 10)
                self.assertIn("OK", run.stderr)
                self.assertIn("nose2-sqltx: [sqltx:analytics] PostgreSQL ", run.stderr)
                self.assertIn(f"/{SECOND}", run.stderr)

    def test_postgresql_and_a_sqlite_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            run = self.run_two(analytics=f"sqlite:///{tmp}/analytics.db")
            self.assertEqual(os.listdir(tmp), [], "the SQLite file was left behind")
        self.assertRan(run, 10)
        self.assertIn("nose2-sqltx: [sqltx:analytics] SQLite ", run.stderr)

    def test_mariadb_and_postgresql(self):
        run = self.run_two(main=mysql_dsn("pymysql"))
        self.assertRan(run, 10)
        self.assertIn("nose2-sqltx: MariaDB ", run.stderr)
        self.assertIn("nose2-sqltx: [sqltx:analytics] PostgreSQL ", run.stderr)

    def test_every_runner(self):
        for runner, tests in (("nose2 -N 2", 10), ("pytest", 10), ("pytest -n 2", 10), ("unittest", 8)):
            with self.subTest(runner=runner):
                run = self.run_two(runner=runner)
                self.assertRan(run, tests)

    def test_pyproject_toml_and_the_pytest_fixture(self):
        run = self.run_two(f"{SCENARIO}/toml", runner="pytest")
        self.assertRan(run, 2)

    def test_on_a_throwaway_server(self):
        """No dsn anywhere: both databases on the run's own server, which goes with them;
        each database's schema recorded in the schema cache, then replayed."""
        with tempfile.TemporaryDirectory(prefix="sqltx-test-servers-") as servers, \
                tempfile.TemporaryDirectory(prefix="sqltx-test-cache-") as cache:
            Path(servers).chmod(0o755)  # the server runs as another account when we are root
            for args, schemas in (((), "recorded in"), ((), "replayed from"), (("-N", "2"), None)):
                with self.subTest(args=args, schemas=schemas):
                    run = run_nose2(SCENARIO, *args, set_dsn=False,
                                    env={"PYTHONPATH": APP_PATH, "SQLTX_SERVER_DIR": servers,
                                         "SQLTX_CACHE_DIR": cache})
                    self.assertEqual(run.returncode, 0, run.output)
                    self.assertRan(run, 10)
                    self.assertIn("/analytics?host=", run.stderr)
                    if schemas is not None:  # (each worker of -N 2 has a summary of its own, not shown)
                        self.assertEqual(run.stderr.count(f"({schemas} the schema cache)"), 2, run.stderr)
                    deadline = time.monotonic() + 10
                    while server_processes(servers) and time.monotonic() < deadline:
                        time.sleep(0.05)
                    self.assertEqual(server_processes(servers), [], "a server process was left behind")
                    self.assertEqual(os.listdir(servers), [], "a server directory was left behind")
        self.assertDatabaseUnchanged()


class TestAsync(DatabasesTest):
    def test_two_databases_with_async_drivers(self):
        """AsyncDatabaseTest over two databases: the app's async_sessionmaker
        bound to both, class data in both, a raw COMMIT in one rebuilding
        both (the test after it checks the class's data, once)."""
        with tempfile.TemporaryDirectory() as tmp:
            for analytics in (second_dsn("asyncpg"), f"sqlite+aiosqlite:///{tmp}/analytics.db",
                              second_dsn("psycopg")):  # (psycopg 3: used asynchronously, as the run's own)
                with self.subTest(analytics=make_url(analytics).drivername):
                    run = self.run_two(f"{SCENARIO}/async", main=dsn("asyncpg"), analytics=analytics, expect=1)
                    self.assertRan(run, 3)
                    self.assertIn("FAILED (errors=1)", run.stderr)
                    self.assertIn("test_c_after_it (test_async_two.TestAsyncTwo.test_c_after_it) ... ok", run.stderr)
                    self.assertIn("nose2-sqltx: in [sqltx:analytics]'s database", run.stderr)
            self.assertEqual(os.listdir(tmp), [], "the SQLite file was left behind")

    def test_parallel_workers_match_the_second_driver_too(self):
        run = self.run_two(f"{SCENARIO}/async", "-N", "2", main=dsn("asyncpg"), analytics=second_dsn("psycopg"),
                           expect=1)
        self.assertRan(run, 3)
        self.assertIn("[sqltx:analytics] PostgreSQL ", run.stderr)
        self.assertIn("postgresql+psycopg_async://", run.stderr)


class TestEndedInOne(DatabasesTest):
    def test_a_raw_commit_in_either_rebuilds_both(self):
        """The test that committed fails; the next ones find the class's data
        once in each database (its setUp checks) and nothing of the test's."""
        run = self.run_two(f"{SCENARIO}/ended", expect=1)
        self.assertRan(run, 4)
        self.assertIn("FAILED (errors=2)", run.stderr)
        self.assertIn("test_2_after_it (test_ended_in_one.TestEndedInOne.test_2_after_it) ... ok", run.stderr)
        self.assertIn("test_4_after_that (test_ended_in_one.TestEndedInOne.test_4_after_that) ... ok", run.stderr)
        self.assertIn("nose2-sqltx: in [sqltx:analytics]'s database", run.stderr)


class TestRealCommits(DatabasesTest):
    def test_both_databases_really_commit_together(self):
        """A class with real commits and a test with @real_commits: both
        databases commit for real (another connection sees the rows), the
        class's data is made once in each, and the next tests are isolated
        in both transactions again; no table is left in either."""
        for main in (dsn(), mysql_dsn("pymysql")):
            with self.subTest(main=make_url(main).get_backend_name()):
                run = self.run_two(f"{SCENARIO}/realcommits", main=main)
                self.assertRan(run, 5)


class TestSignals(DatabasesTest):
    def test_sigterm_in_a_statement_on_the_second_database(self):
        """The statement is cancelled, both transactions are rolled back, the
        process dies by the signal, and neither database keeps anything."""
        env = {"SQLTX_DSN_ANALYTICS": second_dsn(), "PYTHONPATH": APP_PATH}
        with slow_run(env=env, scenario=f"{SCENARIO}/hold") as proc:
            time.sleep(0.3)  # into the statement
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
            took = time.monotonic() - sent
        self.assertEqual(proc.returncode, -signal.SIGTERM, err)
        self.assertLess(took, 10, err)
        self.assertIn("nose2-sqltx: stopped by SIGTERM in test_hold.TestHeld.test_held after 0 tests; "
                      "the run's transaction was rolled back", err)
        self.assertDatabaseUnchanged()
        self.assertEqual(_catalog(SECOND), ([], ["public"]), "tables or schemas left in the second database")


class TestFlaskBinds(DatabasesTest):
    def test_sqlalchemy_binds_go_to_the_database_of_their_name(self):
        run = self.run_two(f"{SCENARIO}/flask_binds")
        self.assertRan(run, 3)

    def test_a_bind_with_no_database_of_its_name_is_one_line(self):
        run = self.run_two(f"{SCENARIO}/flask_binds/no_section", expect=2)
        self.assertEqual(run.stderr.strip().splitlines(), [
            "nose2-sqltx: error: [sqltx] sessions = binds_app:db: its app has a bind 'analytics' (SQLALCHEMY_BINDS), "
            "and the run has no database of that name: its tables would be made and used in [sqltx]'s database. "
            "Add a [sqltx:analytics] section (its dsn and the bind's metadata) for the bind's own database"])


class TestBadInput(DatabasesTest):
    SECRET = "s3cret-pw"

    def assertOneLine(self, run, expected):
        self.assertNotIn("Traceback", run.output)
        self.assertNotIn(self.SECRET, run.output)
        self.assertEqual(run.output.strip().splitlines(), [f"nose2-sqltx: error: {expected}"])

    def test_sections(self):
        cases = {
            "named_whole_run_key": "[sqltx:analytics] shard: applies to the whole run, not to one of its databases. "
                                   "Set it under [sqltx]",
            "named_unknown_key": "[sqltx:analytics] metdata: unknown key. Keys of [sqltx:analytics]: dsn, metadata, "
                                 "fixtures, lock-timeout, statement-timeout, engines, sessions, alembic, "
                                 "allow-database, create-database, reset-sequences, schemas, check-migrations",
            "named_bad_name": "section [sqltx:Analytics DB]: is not a database name nose2-sqltx takes. Name it in "
                              "lower case letters, digits and _, starting with a letter: [sqltx:analytics]",
            "named_whole_run_key_2": "[sqltx:analytics] show-queries: applies to the whole run, not to one of its "
                                     "databases. Set it under [sqltx]",
            "named_without_main": "section [sqltx:analytics]: is set, and there is no [sqltx] section for the run's "
                                  "own database. Add a [sqltx] section too (with no dsn: a throwaway server)",
        }
        for cfg, expected in cases.items():
            with self.subTest(cfg=cfg):
                run = self.run_two("badinput", "-c", f"{cfg}.cfg", expect=2)
                self.assertOneLine(run, expected)

    def test_dsns(self):
        password = make_url(dsn()).set(password=self.SECRET)
        same = password.render_as_string(hide_password=False)
        masked = password.render_as_string(hide_password=True)
        cases = [
            ({"SQLTX_DSN_ANALYTICS": ""},
             "[sqltx:analytics] dsn: is not set, and the run's database is not a throwaway server to make this one "
             "on. Set dsn under [sqltx:analytics] (or SQLTX_DSN_ANALYTICS)"),
            ({"SQLTX_DSN": same, "SQLTX_DSN_ANALYTICS": same},
             f"environment variable SQLTX_DSN_ANALYTICS = {masked}: is the database of [sqltx] too: each database of "
             "the run must be one of its own. Give each section the URL of a database of its own"),
        ]
        for env, expected in cases:
            with self.subTest(env=sorted(env)):
                run = run_nose2("badinput", "-c", "named_database.cfg",
                                env={"SQLTX_DSN_ANALYTICS": second_dsn(), "PYTHONPATH": APP_PATH, **env})
                self.assertEqual(run.returncode, 2, run.output)
                self.assertOneLine(run, expected)
                self.assertDatabaseUnchanged()

    def test_an_unreachable_second_database_names_its_section(self):
        missing = make_url(second_dsn()).set(database="test_sqltx_no_such", password=self.SECRET)
        run = run_nose2("badinput", "-c", "named_database.cfg",
                        env={"SQLTX_DSN_ANALYTICS": missing.render_as_string(hide_password=False)})
        self.assertEqual(run.returncode, 2, run.output)
        line = run.output.strip()
        self.assertEqual(len(line.splitlines()), 1, run.output)
        self.assertIn('database "test_sqltx_no_such" does not exist', line)
        self.assertIn("[sqltx:analytics] dsn (or SQLTX_DSN_ANALYTICS) names the right host", line)
        self.assertNotIn(self.SECRET, line)
        self.assertDatabaseUnchanged()


class TestAsInProduction(DatabasesTest):
    """The oracle: the scenario's app on ordinary engines, really committing
    to two real databases, leaves the rows the scenario's tests expect."""

    def test_the_same_operations_with_real_commits(self):
        import importlib.util

        spec = importlib.util.spec_from_file_location("sqltx_oracle_shop", SCENARIOS / SCENARIO / "shop.py")
        shop = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(shop)
        _admin('DROP DATABASE IF EXISTS "test_sqltx_oracle"')
        _admin('CREATE DATABASE "test_sqltx_oracle"')
        self.addCleanup(_admin, 'DROP DATABASE IF EXISTS "test_sqltx_oracle" WITH (FORCE)')
        main = create_engine(make_url(dsn()).set(database="test_sqltx_oracle"))
        analytics = create_engine(second_dsn())
        self.addCleanup(main.dispose)
        self.addCleanup(analytics.dispose)
        shop.Base.metadata.create_all(main)
        shop.AnalyticsBase.metadata.create_all(analytics)
        self.addCleanup(shop.AnalyticsBase.metadata.drop_all, analytics)
        shop.Session.configure(binds={shop.Base: main, shop.AnalyticsBase: analytics})
        with shop.Session() as session:
            session.add(shop.Customer(id=1, name="ada"))
            session.add(shop.Event(kind="seed"))
            session.commit()
        shop.place_order(1, "book")
        self.assertEqual(shop.counts(), (1, 1, 2, 1))  # test_a_commit_reaches_both
        with analytics.connect() as conn:
            self.assertEqual(conn.execute(text("SELECT kind FROM event ORDER BY id")).scalars().all(),
                             ["seed", "order book"])
        shop.abandoned_order(1, "pen")
        self.assertEqual(shop.counts(), (1, 1, 2, 1))  # test_c: the rolled-back order left nothing
