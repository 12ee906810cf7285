"""Async SQLAlchemy: AsyncDatabaseTest, the app's async engines and session
factories, on every async driver; a sync DatabaseTest class in the same run;
the bad input of async runs."""

import asyncio
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import delete, event, insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from tests.functional.test_bad_input import SECRET, OneLineErrorTest
from tests.functional.test_parity import _load, ops
from tests.support import (
    ASYNC_TARGETS,
    PYTHONPATH,
    QUICK,
    SCENARIOS,
    FunctionalTest,
    async_semantics_tests,
    dsn,
    each_target,
    mysql_dsn,
    run_nose2,
    target_dsn,
)

SEQUENCES = 20 if QUICK else 40
engines = _load("async_engines")


def async_oracle(target: str, sequences: int) -> dict[tuple[str, int], Any]:
    """The scenario's sequences on an ordinary async engine of the target's
    driver, with real commits: what production gives."""

    async def play_all(directory: str) -> dict[tuple[str, int], Any]:
        if target.startswith("sqlite"):
            engine = engines.engine_of_its_own(make_url(f"sqlite+aiosqlite:///{directory}/oracle.db"))

            @event.listens_for(engine.sync_engine, "connect")
            def _connect(dbapi_connection: Any, record: Any) -> None:
                dbapi_connection.isolation_level = None  # SQLAlchemy's recipe for savepoints on aiosqlite

            @event.listens_for(engine.sync_engine, "begin")
            def _begin(connection: Any) -> None:
                connection.exec_driver_sql("BEGIN")
        else:
            engine = engines.engine_of_its_own(make_url(target_dsn(target)))
        table = ops.rows_table("sqltx_async_oracle_rows")
        seen = {}
        async with engine.begin() as conn:
            await conn.run_sync(table.metadata.create_all)
        try:
            for seed in range(sequences):
                steps = ops.sequence(seed)
                for path in ("session", "connection"):
                    async with engine.begin() as conn:
                        await conn.execute(delete(table))
                        await conn.execute(insert(table).values(name=ops.START))
                    if path == "session":
                        async with AsyncSession(engine) as session:
                            seen[(path, seed)] = await session.run_sync(ops.play, table, steps)
                    else:
                        async with engine.connect() as connection:
                            seen[(path, seed)] = await connection.run_sync(ops.play, table, steps)
        finally:
            async with engine.begin() as conn:
                await conn.run_sync(table.metadata.drop_all)
            await engine.dispose()
        return seen

    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(play_all(tmp))


class TestAsyncSemantics(FunctionalTest):
    @each_target(*ASYNC_TARGETS)
    def test_what_async_app_code_may_do(self, target):
        run = self.run_scenario("async_semantics", target=target)
        self.assertRan(run, async_semantics_tests(target))
        self.assertIn("\nOK\n", run.stderr)
        self.assertIn(f" at {target.removesuffix('-file')}:/", run.stderr)
        # the app's CLI engine runs on the run's (async) driver, and the run says so
        self.assertIn("set aside from the app's engines: app:sync_engine its dialect", run.stderr)


class TestAsyncAppSavepoints(FunctionalTest):
    @each_target(*ASYNC_TARGETS)
    def test_random_savepoints_commits_and_rollbacks_as_in_production(self, target):
        want = async_oracle(target, SEQUENCES)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "seen.jsonl"
            run = self.run_scenario("async_savepoints", target=target, verbose=False,
                                    env={"ORACLE_OUT": str(out), "ORACLE_SEQUENCES": str(SEQUENCES)})
            got = {(r["path"], r["seed"]): r["seen"] for r in map(json.loads, out.read_text().splitlines())}
        self.assertRan(run, 2 * SEQUENCES)
        self.assertEqual(set(got), set(want))
        differ = [key for key in sorted(want) if got[key] != want[key]]
        report = "\n".join(f"{path} seed {seed}: {ops.sequence(seed)}\n"
                           f"  production: {want[(path, seed)]}\n  under the plugin: {got[(path, seed)]}"
                           for path, seed in differ[:3])
        self.assertEqual(differ, [], f"{len(differ)} of {len(want)} sequences differ from production:\n{report}")


class TestAsyncEdges(FunctionalTest):
    """Failures in async tests are the test's own, with the plugin's words,
    and the next test starts clean."""

    @each_target(*ASYNC_TARGETS)
    def test_raw_commit_leak_and_timeouts(self, target):
        with tempfile.TemporaryDirectory() as tmp:
            run = self.run_scenario("async_edges", target=target, expect=1, env={"EDGES_TMP": tmp}, timeout=120)
        err = run.stderr
        self.assertRegex(err, r"test_2_after_commit .* ok")
        self.assertRegex(err, r"test_6_still_usable .* ok")
        self.assertIn("TransactionEndedError: the statement 'COMMIT' ended the test transaction", err)
        self.assertIn("LeakError: 'CREATE TABLE sqltx_async_leak (id INTEGER)' was sent through an engine that "
                      "is not in the test transaction", err)
        self.assertIn("code under test ended the run's transaction 1 time(s)", err)
        if target.startswith("sqlite"):
            self.assertIn("FAILED (errors=2, skipped=2)", err)
            return
        self.assertIn("FAILED (errors=4)", err)
        # the 5 s sleep was cancelled by the 2 s statement timeout, and explained
        self.assertIn("ran longer than statement-timeout (2000 ms)", err)
        ended = float(re.search(r"statement ended after ([\d.]+)s", run.stdout).group(1))
        self.assertLess(ended, 3.0)
        # another connection waiting for the test transaction's lock: ended within lock-timeout (1 s)
        self.assertIn("LockWaitError: ", err)
        self.assertIn("for a lock that the test transaction of nose2-sqltx holds" if target.startswith("postgresql")
                      else "the test transaction of nose2-sqltx, which holds its locks until the run ends, is the "
                      "likely holder", err)
        waited = float(re.search(r"other connection waited ([\d.]+)s", run.stdout).group(1))
        self.assertGreater(waited, 0.5)
        self.assertLess(waited, 1.5)


class TestTheTestsLoop(FunctionalTest):
    """async-test-loop: each AsyncDatabaseTest a task on the run's loop (run,
    the default) or on a loop of its own (own), with what
    IsolatedAsyncioTestCase promises either way; a test that blocks the run's
    loop while a thread waits for the database fails, in lock-timeout, and
    harms neither the run nor the next test."""

    TESTS = ("test_1_one_context_for_the_phases_and_debug_mode", "test_2_leaves_a_task_and_a_generator_running",
             "test_3_they_were_ended_with_that_test", "test_4_sync_code_in_a_task_of_the_test",
             "test_7_the_loop_is_the_runs_or_the_tests_own")

    @each_target(*ASYNC_TARGETS)
    def test_on_the_runs_loop(self, target):
        started = time.monotonic()
        run = self.run_scenario("async_loop", target=target, expect=1, env={"LOOP_MODE": "run"}, timeout=120)
        err = run.stderr
        self.assertRan(run, 7)
        for name in self.TESTS:
            self.assertRegex(err, rf"{name} \(.*\) \.\.\. ok", run.output)
        self.assertIn("FAILED (failures=1, errors=2)", err)
        blocked = re.findall(r"^nose2_sqltx\.errors\.LoopBlockedError: this thread waited ([\d.]+)s for the test "
                             r"transaction's connection while the async test blocks the run's event loop at (.*)$",
                             err, re.MULTILINE)
        self.assertEqual(len(blocked), 2, run.output)
        (waited_5, at_5), (waited_6, at_6) = blocked
        # lock-timeout is 1s: each gave up then, and said where the loop was blocked
        for waited in (waited_5, waited_6):
            self.assertGreaterEqual(float(waited), 1.0)
            self.assertLess(float(waited), 3.0)
        self.assertRegex(at_5, r"^\S*test_loop\.py:\d+ in test_5_another_thread_waits_while_the_test_blocks_the_loop, ")
        self.assertRegex(at_6, r"^\S*anyio\S*\.py:\d+ in \w+; called from \S*test_loop\.py:\d+ in "
                               r"test_6_starlettes_test_client_inside_an_async_test, ")
        self.assertIn("Fix: await instead of blocking (httpx.AsyncClient with ASGITransport instead of Starlette's "
                      "TestClient;", err)
        self.assertIn("or set async-test-loop = own in [sqltx]", err)
        # the thread got the error (and swallowed it); the test failed with it all the same
        # (SQLAlchemy wraps it in a StatementError where it came as the cursor was made)
        self.assertRegex(run.stdout, r"THREAD SAW: \w+: (\(nose2_sqltx\.errors\.LoopBlockedError\) )?this thread "
                                     r"waited [\d.]+s for the test transaction's connection")
        self.assertLess(time.monotonic() - started, 60)

    @each_target(*ASYNC_TARGETS)
    def test_on_a_loop_of_its_own(self, target):
        run = self.run_scenario("async_loop", "-c", "own.cfg", target=target, env={"LOOP_MODE": "own"})
        self.assertRan(run, 7)
        self.assertIn("\nOK\n", run.stderr)
        self.assertIn("THREAD SAW: int: 0", run.stdout)

    def test_a_bad_value(self):
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "bad.cfg"
            config.write_text("[sqltx]\nasync-test-loop = shared\n")
            run = run_nose2("async_loop", "-c", str(config), driver="asyncpg", env={"LOOP_MODE": "run"})
        self.assertEqual(run.returncode, 2, run.output)
        lines = run.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, run.stderr)
        self.assertIn("[sqltx] async-test-loop = shared: is not one of run, own. Write run or own", lines[0])
        self.assertDatabaseUnchanged()


class TestAsyncProductionGuard(FunctionalTest):
    def test_a_database_not_named_for_tests_is_refused(self):
        from tests.functional.test_apps import psql

        psql("CREATE DATABASE sqltx_shop")
        self.addCleanup(psql, "DROP DATABASE sqltx_shop")
        url = make_url(dsn("asyncpg")).set(database="sqltx_shop").render_as_string(hide_password=False)
        run = run_nose2("async_semantics", env={"SQLTX_DSN": url})
        self.assertEqual(run.returncode, 2, run.output)
        lines = run.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, run.stderr)
        self.assertIn(f"nose2-sqltx: error: refusing to run tests on {url.split('?')[0]}", lines[0])
        self.assertIn("its name 'sqltx_shop' does not look like a test database", lines[0])
        self.assertEqual(psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", "sqltx_shop"), [(0,)])
        self.assertDatabaseUnchanged()


class TestAsyncBadInput(OneLineErrorTest):
    def test_async_dsn_with_only_sync_app_objects(self):
        url = make_url(dsn()).set(drivername="postgresql+asyncpg").render_as_string(False)
        run = run_nose2("badinput", "-c", "sync_objects.cfg", env={"SQLTX_DSN": url})
        self.assertOneLineError(run, "environment variable SQLTX_DSN = postgresql+asyncpg://",
                                "names the async driver 'asyncpg', but every object under engines and sessions "
                                "is sync (async_app:sync_engine)", "Name the driver the app's engines use")

    def test_async_app_object_with_a_sync_driver(self):
        run = run_nose2("badinput", "-c", "async_object.cfg", driver="psycopg2")
        self.assertOneLineError(run, "[sqltx] engines = async_app:async_engine: is an AsyncEngine (async "
                                "SQLAlchemy), and dsn names the sync driver 'psycopg2'",
                                "Name an async driver in dsn: postgresql+asyncpg://")

    def test_async_test_class_with_a_sync_driver(self):
        for target in ("postgresql+psycopg2", "mysql+pymysql", "sqlite"):
            with self.subTest(target=target):
                run = run_nose2("badinput", "-c", "ok.cfg", "async_tests_only", target=target)
                driver = target.split("+")[-1].replace("sqlite", "pysqlite")
                self.assertOneLineError(run, f"environment variable SQLTX_DSN = {target}",
                                        f"names the sync driver '{driver}'",
                                        "async_tests_only.TestAsyncNever is an AsyncDatabaseTest",
                                        "Name an async driver")

    def test_psycopg_3_is_used_asynchronously_for_async_tests(self):
        run = run_nose2("badinput", "-c", "ok.cfg", "async_tests_only.TestAsyncNever", driver="psycopg")
        self.assertEqual(run.returncode, 0, run.output)
        self.assertIn("at postgresql+psycopg_async://", run.stderr)
        self.assertDatabaseUnchanged()

    def test_missing_async_driver_and_greenlet(self):
        hide = str(SCENARIOS / "badinput" / "no_asyncpg")
        url = make_url(dsn()).set(drivername="postgresql+asyncpg", password=SECRET).render_as_string(False)
        run = run_nose2("badinput", "-c", "ok.cfg", env={"SQLTX_DSN": url,
                                                         "PYTHONPATH": f"{hide}{os.pathsep}{PYTHONPATH}"})
        self.assertOneLineError(run, "environment variable SQLTX_DSN = postgresql+asyncpg://postgres:***@",
                                "the driver 'asyncpg' is not installed", "pip install asyncpg")
        hide = str(SCENARIOS / "badinput" / "no_greenlet")
        run = run_nose2("badinput", "-c", "ok.cfg", env={"SQLTX_DSN": mysql_dsn("aiomysql"),
                                                         "PYTHONPATH": f"{hide}{os.pathsep}{PYTHONPATH}"})
        self.assertOneLineError(run, "environment variable SQLTX_DSN = mysql+aiomysql://",
                                "the async driver 'aiomysql' needs the greenlet package",
                                "pip install greenlet (or nose2-sqltx[async])")


class TestAsyncWrongBase(FunctionalTest):
    def test_async_database_test_on_a_plain_testcase_is_an_error_not_a_pass(self):
        run = run_nose2("badinput", "-c", "ok.cfg", "async_tests_only",
                        env={"SQLTX_DSN": target_dsn("sqlite+aiosqlite")})
        self.assertEqual(run.returncode, 1, run.output)
        self.assertRegex(run.stderr, r"test_nothing .* ok")
        self.assertIn("TypeError: TestWrongBase uses AsyncDatabaseTest with TestCase; its async tests would never "
                      "run. Mix it with unittest.IsolatedAsyncioTestCase", run.stderr)
        self.assertNotIn("never awaited", run.stderr)
        self.assertDatabaseUnchanged()
