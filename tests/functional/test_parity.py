"""Production parity: what app code sees under the plugin against an oracle,
the same operations on an ordinary engine with real commits."""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, String, cast, create_engine, delete, event, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from nose2_sqltx import unwatched
from tests.support import QUICK, SCENARIOS, FunctionalTest, each_target, run_nose2, target_dsn

SEQUENCES = 30 if QUICK else 60


def _load_from(path: Path, **environ: str) -> Any:
    """A scenario's module, imported here (for the oracle) with ``environ`` set while it loads."""
    saved = {key: os.environ.get(key) for key in environ}
    os.environ.update(environ)
    try:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _load(name: str) -> Any:
    """A module the scenarios share (tests/functional/scenarios/common)."""
    return _load_from(SCENARIOS / "common" / f"{name}.py")


ops = _load("savepoint_ops")
deferred_ops = _load("deferred_ops")


def oracle_engine(target: str, directory: str) -> Engine:
    """An ordinary engine on the target's database, with real commits."""
    if target.startswith("sqlite"):
        # SQLAlchemy's documented configuration for savepoints on pysqlite:
        # the driver's own transaction handling off, BEGIN emitted by SQLAlchemy.
        engine = create_engine(f"sqlite:///{directory}/oracle.db")

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN")

        return engine
    return create_engine(target_dsn(target))


def _sqlite_foreign_keys(dbapi_connection: Any, record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def oracle(target: str, sequences: int) -> dict[tuple[str, int], Any]:
    seen = {}
    with tempfile.TemporaryDirectory() as tmp:
        engine = unwatched(oracle_engine(target, tmp))
        if target.startswith("mysql"):
            # Two handles in one shared transaction see each other's commits at
            # once: compare with the isolation level that does too.
            engine = engine.execution_options(isolation_level="READ COMMITTED")
        table = ops.rows_table("sqltx_oracle_rows")
        table.metadata.create_all(engine)
        try:
            for seed in range(sequences):
                for path in ("session", "connection"):
                    with engine.begin() as conn:
                        conn.execute(delete(table))
                        conn.execute(insert(table).values(name=ops.START))
                    if path == "session":
                        with Session(engine) as handle:
                            seen[(path, seed)] = ops.play(handle, table, ops.sequence(seed))
                    else:
                        with engine.connect() as handle:
                            seen[(path, seed)] = ops.play(handle, table, ops.sequence(seed))
                if not target.startswith("sqlite"):  # one writer at a time: two handles cannot interleave
                    for two in ("two", "turns"):
                        with engine.begin() as conn:
                            conn.execute(delete(table))
                            conn.execute(insert(table).values(name=ops.START))
                        with Session(engine) as a, Session(engine) as b:
                            steps = ops.two_sequence(seed, turns=two == "turns")
                            seen[(two, seed)] = ops.play_two([a, b], table, steps, shared=False)
        finally:
            table.metadata.drop_all(engine)
            engine.dispose()
    return seen


def steps_of(path: str, seed: int) -> Any:
    if path in ("two", "turns"):
        return ops.two_sequence(seed, turns=path == "turns")
    return ops.sequence(seed)


class TestAppSavepoints(FunctionalTest):
    @each_target()
    def test_random_savepoints_commits_and_rollbacks_as_in_production(self, target):
        want = oracle(target, SEQUENCES)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "seen.jsonl"
            run = self.run_scenario("savepoints", target=target, verbose=False,
                                    env={"ORACLE_OUT": str(out), "ORACLE_SEQUENCES": str(SEQUENCES)})
            got = {(r["path"], r["seed"]): r["seen"] for r in map(json.loads, out.read_text().splitlines())}
        self.assertRan(run, 4 * SEQUENCES + 4)  # and test_handles.py
        self.assertLessEqual(set(want), set(got))
        # Two handles: the same as production, or refused (SharedTransactionError)
        # with the same results up to the refusal; never a different row.
        refused = {key: got[key][-1][1] for key in want if key[0] in ("two", "turns") and got[key][-1][0] == "refused"}
        for key, step in refused.items():
            got[key] = got[key][:-1]
            want[key] = [entry for entry in want[key] if entry[0] != "end" and entry[1] < step]
        differ = [key for key in sorted(want) if got[key] != want[key]]
        report = "\n".join(f"{path} seed {seed}: {steps_of(path, seed)}\n"
                           f"  production: {want[(path, seed)]}\n  under the plugin: {got[(path, seed)]}"
                           for path, seed in differ[:3])
        self.assertEqual(differ, [], f"{len(differ)} of {len(want)} sequences differ from production:\n{report}")
        # Refusing everything would pass the checks above: handles that take
        # turns (each finishes its transaction before the other writes) must
        # never be refused, and a freely interleaved sequence gets as far as
        # production up to where sharing would change a result.
        self.assertEqual([key for key in refused if key[0] == "turns"], [])


class TestDeferredConstraints(FunctionalTest):
    @each_target("postgresql+psycopg2", "postgresql+psycopg", "sqlite", "sqlite-file")
    def test_checked_at_the_apps_commit_as_in_production(self, target):
        with tempfile.TemporaryDirectory() as tmp:
            sqlite = target.startswith("sqlite")
            # the scenario's app engine: on SQLite, the driver's own transaction handling
            engine = unwatched(create_engine(f"sqlite:///{tmp}/oracle.db" if sqlite else target_dsn(target)))
            if sqlite:
                event.listen(engine, "connect", _sqlite_foreign_keys)
            parent, child = deferred_ops.tables("sqltx_oracle_deferred", deferred_unique=not sqlite)
            parent.metadata.create_all(engine)
            try:
                want = deferred_ops.play(engine, parent, child)
            finally:
                parent.metadata.drop_all(engine)
                engine.dispose()
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "seen.json"
            run = self.run_scenario("deferred", target=target, env={"ORACLE_OUT": str(out)})
            got = json.loads(out.read_text())
        self.assertRan(run, 2)
        self.assertEqual(got, want)
        self.assertEqual(want[2], "IntegrityError")  # the oracle itself: the commit failed


class TestExistingTables(FunctionalTest):
    """A table of the metadata's name that the database already holds is
    refused, never used with its old rows and columns."""

    @each_target("postgresql+psycopg2", "sqlite-file")
    def test_an_older_table_of_the_same_name_is_refused_in_one_line(self, target):
        with tempfile.TemporaryDirectory() as tmp:
            url = target_dsn(target, tmp)
            engine = unwatched(create_engine(url))
            with engine.begin() as conn:
                conn.exec_driver_sql("CREATE TABLE sqltx_item (id integer PRIMARY KEY, old_name varchar(10))")
                conn.exec_driver_sql("INSERT INTO sqltx_item VALUES (1, 'zed')")
            try:
                run = run_nose2("plain", env={"SQLTX_DSN": url})
                with engine.connect() as conn:
                    rows = conn.exec_driver_sql("SELECT id, old_name FROM sqltx_item").all()
            finally:
                with engine.begin() as conn:
                    conn.exec_driver_sql("DROP TABLE sqltx_item")
                engine.dispose()
            if target == "sqlite-file":
                self.assertEqual(sorted(os.listdir(tmp)), ["run.db"])  # the file the test made, as it was
        self.assertEqual(run.returncode, 2, run.output)
        self.assertEqual(len(run.stderr.strip().splitlines()), 1, run.stderr)
        self.assertIn("tables sqltx_item already exist in", run.stderr)
        self.assertIn("the tests would see their rows and columns", run.stderr)
        self.assertIn("Drop them, or point dsn at a database without them", run.stderr)
        self.assertEqual(rows, [(1, "zed")])  # left as found
        self.assertDatabaseUnchanged()


class TestForkedChildren(FunctionalTest):
    @each_target()
    def test_a_child_is_refused_and_never_touches_the_parents_transaction(self, target):
        run = self.run_scenario("forked", target=target)
        self.assertRan(run, 3)
        self.assertIn("\nOK\n", run.stderr)
        self.assertNotIn("Traceback", run.stderr)  # the child's clean-up is quiet too


class TestClassData(FunctionalTest):
    @each_target()
    def test_each_test_gets_its_own_current_attached_copy(self, target):
        run = self.run_scenario("classdata", target=target)
        self.assertRan(run, 6)
        self.assertIn("\nOK\n", run.stderr)


class TestSequences(FunctionalTest):
    NAMES = ("test_sequences.TestA_Ids.test_one", "test_sequences.TestA_Ids.test_rolled_back_insert",
             "test_sequences.TestA_Ids.test_three", "test_sequences.TestB_OptOut.test_ids_move_on",
             "test_sequences.TestC_IdsAfterAnOptOut.test_starts_from_the_runs_values")

    @each_target("postgresql+psycopg2", "postgresql+psycopg", "sqlite", "sqlite-file")
    def test_reset_sequences_gives_the_same_ids_in_any_order(self, target):
        # In file order, then reversed: TestA's tests each expect the ids
        # they would get first in a fresh database, and TestC runs after the
        # class that opts out in one order and before it in the other.
        for names in (self.NAMES, tuple(reversed(self.NAMES))):
            run = self.run_scenario("sequences", *names, target=target)
            self.assertRan(run, 5)
            self.assertIn("\nOK\n", run.stderr)

    @each_target("mysql+pymysql")
    def test_reset_sequences_is_refused_in_one_line_where_it_cannot_work(self, target):
        run = self.run_scenario("sequences", target=target, expect=2)
        self.assertEqual(len(run.stderr.strip().splitlines()), 1, run.stderr)
        self.assertIn("reset-sequences = true: MySQL sets AUTO_INCREMENT back only with ALTER TABLE", run.stderr)

    @each_target("postgresql+psycopg2")
    def test_a_sequence_that_was_there_is_put_back(self, target):
        engine = unwatched(create_engine(target_dsn(target), poolclass=NullPool))  # no connection held during the run
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE SEQUENCE sqltx_preexisting_seq")
            conn.exec_driver_sql("SELECT setval('sqltx_preexisting_seq', 41)")
        try:
            run = self.run_scenario("sequences", target=target, env={"PREEXISTING_SEQUENCE": "sqltx_preexisting_seq"})
            with engine.connect() as conn:
                after = conn.exec_driver_sql("SELECT last_value, is_called FROM sqltx_preexisting_seq").one()
        finally:
            with engine.begin() as conn:
                conn.exec_driver_sql("DROP SEQUENCE sqltx_preexisting_seq")
            engine.dispose()
        self.assertRan(run, 6)
        self.assertIn("test_uses_it", run.stderr)
        self.assertEqual(tuple(after), (41, True))
        self.assertIn("; all rolled back", run.stderr)


class TestRuntimeEngines(FunctionalTest):
    """An engine the app makes while tests run (a factory, a migration tool's
    NullPool engine) on the run's database joins the test transaction.
    (sqlite:// is left out: there every new engine is a new, empty database,
    as in production.)"""

    @each_target("postgresql+psycopg2", "postgresql+psycopg", "mysql+pymysql", "mysql+mysqldb", "sqlite-file")
    def test_engines_made_during_the_run_are_in_the_test_transaction(self, target):
        sqlite = target.startswith("sqlite")
        run = self.run_scenario("runtime_engines", target=target, expect=0 if sqlite else 1)
        self.assertRan(run, 5)
        for n in range(1, 5):
            self.assertRegex(run.stderr, rf"test_{n}_\w+ .* ok")
        if sqlite:
            self.assertIn("OK (skipped=1)", run.stderr)
        else:  # another database: its write refused as before, the run's summary intact
            self.assertRegex(run.stderr, r"test_5_\w+ .* ERROR")
            self.assertIn("LeakError: 'CREATE TABLE sqltx_never (a int)' was sent through an engine that is not in "
                          "the test transaction", run.stderr)
            self.assertIn("FAILED (errors=1)", run.stderr)


class TestThreads(FunctionalTest):
    """Four threads, forty tasks, each its own Session: add, commit, count.
    In production (real commits, a pool of connections) all forty rows stay;
    so they must under the plugin, on every run (mysqlclient included, which
    refuses a connection two threads use at the same moment)."""

    @each_target()
    def test_threads_keep_every_committed_row(self, target):
        with tempfile.TemporaryDirectory() as tmp:  # the oracle: real commits
            engine = unwatched(oracle_engine(target, tmp))
            Item = ops.rows_table("sqltx_oracle_threads")
            Item.metadata.create_all(engine)
            try:
                def task(i: int) -> None:
                    with engine.begin() as conn:
                        conn.execute(insert(Item).values(name=f"task-{i:02d}"))

                with ThreadPoolExecutor(4) as pool:
                    list(pool.map(task, range(40)))
                with engine.connect() as conn:
                    production = sorted(conn.scalars(select(Item.c.name)))
            finally:
                Item.metadata.drop_all(engine)
                engine.dispose()
        self.assertEqual(production, [f"task-{i:02d}" for i in range(40)])
        for _ in range(3):  # a race shows up in some runs only
            run = self.run_scenario("threads", target=target)
            self.assertRan(run, 2)
            self.assertIn("\nOK\n", run.stderr)


class TestEngineOptions(FunctionalTest):
    @each_target("postgresql+psycopg2", "postgresql+psycopg", "mysql+pymysql", "sqlite-file")
    def test_a_redirected_engine_writes_what_it_writes_in_production(self, target):
        options_app = _load_from(SCENARIOS / "engine_options" / "options_app.py", APP_URL=target_dsn(target, "/tmp"))
        with tempfile.TemporaryDirectory() as tmp:
            url = target_dsn(target, tmp)
            engine = unwatched(options_app.make_engine(url))  # production: the app's engine, real commits
            if target.startswith("sqlite"):
                engine = unwatched(options_app.make_engine(f"sqlite:///{tmp}/oracle.db"))
            options_app.metadata.create_all(engine)
            try:
                options_app.store(engine, {"b": 1, "a": [2, 1]})
                with engine.connect() as conn:
                    want = [conn.execute(select(cast(options_app.documents.c.body, String))).scalar_one(),
                            options_app.session_state(engine)]
            finally:
                options_app.metadata.drop_all(engine)
                engine.dispose()
            out = Path(tmp) / "stored.json"
            # The app's own setting: the same driver as the run's, on a host
            # that does not exist (the run redirects it).
            app_url = make_url(url).set(host="app-db.invalid", database="app") if not target.startswith("sqlite") \
                else make_url(f"sqlite:///{tmp}/never-made.db")
            run = self.run_scenario("engine_options", target=target,
                                    env={"ORACLE_OUT": str(out), "APP_URL": app_url.render_as_string(False)})
            self.assertFalse((Path(tmp) / "never-made.db").exists())
            got = json.loads(out.read_text())
        self.assertRan(run, 1)
        # the oracle itself: the app's serializer and session set-up at work
        self.assertEqual(want, ['{"a":[2,1],"b":1}', {"postgresql": "Pacific/Chatham 7MB", "mysql": "+05:45 4321",
                                                     "sqlite": "1 42"}[options_app.backend(url)]])
        self.assertEqual(got, want)
        # said once, at the end of the run; what was carried over is not named
        self.assertEqual(run.stderr.count("set aside from the app's engines"), 1, run.stderr)
        key = next(iter(options_app.OTHER[options_app.backend(url)]))
        self.assertIn(f"set aside from the app's engines: options_app:pinged connect_args {key!r} (one connection "
                      "cannot also take options_app:engine's value); options_app:pinged pool_pre_ping\n", run.stderr)

