"""Real apps: their own engines and sessions redirected, Flask-SQLAlchemy,
factory_boy, Alembic, leaks caught, the production guard, query counting and
real commits. Each is a scenario run through nose2 on PostgreSQL (Alembic on
MariaDB too), then the database is inspected."""

import subprocess
import sys

import psycopg2
from sqlalchemy.engine import make_url

from tests.support import (
    ROOT,
    FunctionalTest,
    clean_env,
    dsn,
    each_target,
    libpq_dsn,
    run_nose2,
    snapshot,
    wait_for_sessions_to_end,
)

MP = ("--plugin", "nose2.plugins.mp", "-N", "2")


def psql(sql, database=None):
    """Run ``sql`` in autocommit on the test server (``database``: another one on it)."""
    conn = psycopg2.connect(libpq_dsn() + (f" dbname={database}" if database else ""))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


class TestRedirectedApps(FunctionalTest):
    def test_engines_sessions_queries_and_leaks(self):
        run = self.run_scenario("apps", expect=1)
        err = run.stderr
        self.assertRan(run, 14)
        for name in ("test_1_app_commits_inside_the_test", "test_2_and_is_rolled_back_after_it",
                     "test_engine_is_real_reflection_works_password_masked",
                     "test_dispose_by_the_app_keeps_the_test_transaction", "test_unbound_factory_is_bound_to_the_test",
                     "test_1_class_data_stays_bound", "test_2_next_test_sees_the_class_state",
                     "test_queries_log_the_tests_sql", "test_assert_num_queries_counts_app_sql",
                     "test_assert_num_queries_fails_with_the_list", "test_reading_elsewhere_is_fine",
                     "test_unwatched_engine_is_let_through"):
            self.assertRegex(err, rf"{name} .* ok")
        # Both leaks fail their test, each once; the one the app swallowed too.
        self.assertRegex(err, r"test_leak_raised .* ERROR")
        self.assertRegex(err, r"test_leak_swallowed_by_the_app .* ERROR")
        self.assertEqual(err.count("LeakError: 'INSERT INTO sqltx_item (name) VALUES (%(name)s) RETURNING "
                                   "sqltx_item.id' was sent through an engine that is not in the test transaction: "
                                   "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"), 2, err)
        self.assertIn("(app_db:reporting_engine); it was refused, nothing was written, because its work would "
                      "outlive the test. Fix: add app_db:reporting_engine under engines", err)
        self.assertIn("FAILED (errors=2)", err)
        self.assertIn("; all rolled back", err)
        # Refused before it ran: no row reached the table (which the run made
        # and dropped again, so nothing could be left in it anyway) and no table.
        self.assertNotIn("s3cret", run.output)

    def test_a_path_to_the_wrong_kind_of_object_is_one_line(self):
        run = run_nose2("apps_wrong")
        self.assertEqual(run.returncode, 2, run.output)
        self.assertEqual(run.stderr.strip().splitlines(), [
            "nose2-sqltx: error: [sqltx] engines = wrong_db:SessionLocal: is a sessionmaker, not an Engine or "
            "AsyncEngine (list it under sessions). Point it at the object your app uses, e.g. myapp.db:engine or "
            "myapp:db"])

    def test_a_change_committed_outside_fails_the_run(self):
        self.addCleanup(psql, "DROP TABLE IF EXISTS sqltx_leftover")
        run = run_nose2("leftover")
        self.assertEqual(run.returncode, 1, run.output)
        self.assertIn("ERROR: nose2-sqltx (end of run)", run.stderr)
        self.assertRegex(run.stderr, r"DatabaseChangedError: postgresql\+psycopg2://postgres@127.0.0.1:5432/test\S* is "
                         r"not as the run found it \(new: sqltx_leftover\)\. Something committed outside the test "
                         "transaction")
        self.assertIn("the database was changed outside the run, see the error above", run.stderr)
        self.assertIn("public.sqltx_leftover", snapshot().tables)


class TestFlaskExample(FunctionalTest):
    """examples/bookshop, as a user runs it (SQLTX_DSN: the test server)."""

    def run_example(self, *args):
        env = clean_env(PYTHONPATH=str(ROOT), SQLTX_DSN=dsn())
        return subprocess.run([sys.executable, "-m", "nose2", "-v", *args], cwd=ROOT / "examples" / "bookshop",
                              env=env, capture_output=True, text=True, timeout=300)

    def test_the_bookshop_example_passes_and_leaves_nothing(self):
        proc = self.run_example()
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("Ran 11 tests", proc.stderr)
        self.assertIn("OK", proc.stderr)
        self.assertIn("schema (2 tables)", proc.stderr)
        self.assertDatabaseUnchanged()

    def test_the_example_in_parallel_workers(self):
        proc = self.run_example(*MP)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("Ran 11 tests", proc.stderr)
        self.assertDatabaseUnchanged()


class TestAfterCommit(FunctionalTest):
    """after_commit callbacks fire at the app's commit as with real commits,
    and captureOnCommitCallbacks holds them back or lists them."""

    @each_target("postgresql+psycopg2", "mysql+pymysql", "sqlite-file")  # (real commits: not sqlite://)
    def test_after_commit_callbacks(self, target):
        run = self.run_scenario("after_commit", target=target)
        self.assertRan(run, 6)
        self.assertIn("OK", run.stderr)


class TestLiveThreads(FunctionalTest):
    """A thread that outlives the test that started it is refused the
    database; the next test sees none of its work."""

    @each_target()
    def test_a_thread_that_outlives_its_test(self, target):
        run = self.run_scenario("live_threads", target=target)
        self.assertRan(run, 4)
        self.assertIn("OK", run.stderr)


class TestFlaskSessionScope(FunctionalTest):
    """flask-session: db.session per app context (the default, as in
    production) or per test, with code under test that pushes an app
    context of its own (a job callback)."""

    def test_a_session_per_app_context_by_default(self):
        run = self.run_scenario("flask_scope")
        self.assertRan(run, 3)
        self.assertIn("OK", run.stderr)

    def test_one_session_per_test(self):
        run = self.run_scenario("flask_scope/per_test", "jobs_per_test")
        self.assertRan(run, 3)
        self.assertIn("OK", run.stderr)

    def test_without_a_flask_db_it_is_one_line(self):
        run = self.run_scenario("flask_scope/no_db", expect=2)
        self.assertEqual(run.stderr.strip().splitlines(), [
            "nose2-sqltx: error: [sqltx] flask-session = test: no Flask-SQLAlchemy db is named under sessions. "
            "Name the app's db under sessions (sessions = myapp:db), or remove flask-session"])


class TestFactoryBoy(FunctionalTest):
    def test_factories_on_the_current_session(self):
        run = self.run_scenario("factories")
        self.assertRan(run, 4)


class TestAlembic(FunctionalTest):
    @each_target("postgresql+psycopg2", "mysql+pymysql")
    def test_schema_from_migrations(self, target):
        run = self.run_scenario("alembic_schema", target=target)
        self.assertRan(run, 3)
        self.assertIn("schema (2 tables)", run.stderr)  # sqltx_shelf and alembic_version

    @each_target("postgresql+psycopg2", "mysql+pymysql")
    def test_migrations_checked_against_the_models(self, target):
        run = self.run_scenario("alembic_drift", target=target)
        self.assertRan(run, 1)
        run = self.run_scenario("alembic_drift/drifted", target=target, expect=2)
        self.assertEqual(run.stderr.strip().splitlines(), [
            "nose2-sqltx: error: checking the migrations against the models (check-migrations) failed: the schema "
            "that ../../alembic_schema/alembic.ini's migrations built differs from the models in 4 place(s):",
            "  - table sqltx_book: in the models, not made by the migrations",
            "  - column sqltx_shelf.colour: in the models, not made by the migrations",
            "  - column sqltx_shelf.label: type VARCHAR(50) after the migrations, VARCHAR(80) in the models",
            "  - column sqltx_shelf.position: made by the migrations, not in the models",
            "Write the migration the models need (alembic revision --autogenerate), or change the models to match "
            "the migrations"])

    def test_an_env_py_that_connects_by_itself_is_stopped(self):
        run = self.run_scenario("alembic_badenv", expect=2)
        self.assertEqual(run.stderr.strip().splitlines(), [
            "nose2-sqltx: error: creating the schema (alembic upgrade head) failed: the env.py of alembic.ini "
            "opened its own connection instead of using the run's: in run_migrations_online(), use "
            "config.attributes.get(\"connection\") when it is set (Alembic's cookbook: \"Sharing a Connection "
            "across one or more programmatic migration commands\")"])


class TestRealCommits(FunctionalTest):
    def test_classes_and_tests_with_real_commits(self):
        run = self.run_scenario("realcommits")
        self.assertRan(run, 10)
        self.assertIn("OK", run.stderr)


class TestProductionGuard(FunctionalTest):
    def test_a_database_not_named_for_tests_is_refused(self):
        psql("CREATE DATABASE sqltx_shop")
        self.addCleanup(psql, "DROP DATABASE sqltx_shop")
        url = make_url(dsn()).set(database="sqltx_shop").render_as_string(hide_password=False)
        masked = url.split("?")[0]
        for args in ((), MP):
            with self.subTest(args=args):
                run = run_nose2("semantics", *args, env={"SQLTX_DSN": url})
                self.assertEqual(run.returncode, 2, run.output)
                lines = run.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, run.stderr)
                self.assertIn(f"nose2-sqltx: error: refusing to run tests on {masked}", lines[0])
                self.assertIn("its name 'sqltx_shop' does not look like a test database", lines[0])
                self.assertIn("add `allow-database = sqltx_shop` under [sqltx]", lines[0])
        run = run_nose2("semantics", env={"SQLTX_DSN": url, "SQLTX_ALLOW_DATABASE": "sqltx_shop"})
        self.assertEqual(run.returncode, 0, run.output)
        self.assertEqual(psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", "sqltx_shop"), [(0,)])

    def test_foreign_tables_are_refused_and_left_alone(self):
        psql("CREATE TABLE sqltx_customer_data (id int); INSERT INTO sqltx_customer_data VALUES (7)")
        self.addCleanup(psql, "DROP TABLE IF EXISTS sqltx_customer_data")
        run = run_nose2("semantics")
        self.assertEqual(run.returncode, 2, run.output)
        self.assertIn("it holds tables the configured metadata does not define (sqltx_customer_data)", run.stderr)
        run = run_nose2("semantics", env={"SQLTX_ALLOW_DATABASE": "test"})
        self.assertEqual(run.returncode, 0, run.output)
        self.assertEqual(psql("SELECT id FROM sqltx_customer_data"), [(7,)])
        self.assertEqual(wait_for_sessions_to_end().sessions, 0)

    def test_the_throwaway_server_is_trusted(self):
        run = run_nose2("factories", set_dsn=False)
        self.assertEqual(run.returncode, 0, run.output)
        self.assertIn("throwaway server", run.stderr)

