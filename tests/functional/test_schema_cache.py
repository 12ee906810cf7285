"""The schema cache: a build recorded, then replayed, gives the schema the
migrations give; a change to what produced it builds it again; a bad or
unwritable cache costs only the build; nothing is left behind."""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.functional.test_bad_input import OneLineErrorTest
from tests.functional.test_server import ServerTest
from tests.support import RUNNERS, SCENARIOS, FunctionalTest, clean_env, dsn, run_nose2

RECORDED = "(recorded in the schema cache)"
REPLAYED = "(replayed from the schema cache)"


class CacheTest:
    """A copy of the schema_cache scenario (its files are changed) and a cache directory of its own."""

    def make_project(self):
        tmp = tempfile.TemporaryDirectory(prefix="sqltx-test-schema-cache-")
        self.addCleanup(tmp.cleanup)
        self.project = Path(tmp.name) / "project"
        shutil.copytree(SCENARIOS / "schema_cache", self.project, ignore=shutil.ignore_patterns("__pycache__"))
        self.cache_dir = Path(tmp.name) / "cache"
        self.catalog_file = Path(tmp.name) / "catalog.json"

    def run_project(self, *args, expect=0, env=None, runner="nose2"):
        self.catalog_file.unlink(missing_ok=True)
        full = clean_env(SQLTX_CATALOG_OUT=str(self.catalog_file), **(env or {}))
        full["PYTHONPATH"] = f"{self.project}:{full['PYTHONPATH']}"
        proc = subprocess.run([sys.executable, "-m", *RUNNERS[runner], "-v", *args], cwd=self.project, env=full,
                              capture_output=True, text=True, timeout=300)
        self.assertEqual(proc.returncode, expect, proc.stdout + proc.stderr)
        return proc.stdout + proc.stderr

    def catalog(self):
        return json.loads(self.catalog_file.read_text())

    def recordings(self):
        return sorted((self.cache_dir / "schemas").iterdir())


class TestOnTheThrowawayServer(CacheTest, ServerTest):
    def setUp(self):
        super().setUp()
        self.make_project()
        self.env["SQLTX_CACHE_DIR"] = str(self.cache_dir)

    def run_project(self, *args, expect=0, env=None, runner="nose2"):
        return super().run_project(*args, expect=expect, env={**self.env, **(env or {})}, runner=runner)

    def test_a_replayed_build_is_the_migrations_schema(self):
        built = self.run_project(env={"SQLTX_SCHEMA_CACHE": "off"})
        self.assertNotIn("schema cache", built)
        migrated = self.catalog()
        self.assertFalse((self.cache_dir / "schemas").exists())
        first = self.run_project()
        self.assertIn(RECORDED, first)
        self.assertEqual(self.catalog(), migrated)
        self.assertEqual(len(self.recordings()), 1)
        second = self.run_project()
        self.assertIn(REPLAYED, second)
        self.assertIn("Ran 5 tests", second)
        self.assertEqual(self.catalog(), migrated)
        self.assertNothingLeft()

    def test_a_changed_revision_builds_it_again(self):
        self.assertIn(RECORDED, self.run_project())
        revision = self.project / "migrations" / "versions" / "0001_shelf.py"
        revision.write_text(revision.read_text().replace("sa.String(50)", "sa.String(80)"))
        again = self.run_project()
        self.assertIn(f"{RECORDED}, fixtures", again)
        self.assertIn("; the schema cache's recording no longer matched what builds the schema (a migration, the "
                      "models, the driver or the server changed), and was replaced\n", again)
        self.assertIn("character varying(80)", json.dumps(self.catalog()))
        self.assertEqual(len(self.recordings()), 1, "the old recording was left behind")
        self.assertIn(REPLAYED, self.run_project())
        self.assertIn("character varying(80)", json.dumps(self.catalog()))
        self.assertNothingLeft()

    def test_a_changed_module_the_migrations_import_builds_it_again(self):
        self.assertIn(RECORDED, self.run_project())
        module = self.project / "shelf_kinds.py"
        module.write_text(module.read_text().replace('"corner"]', '"corner", "ceiling"]'))
        # (the test checks the rows against the module's list: a stale replay would fail it)
        again = self.run_project()
        self.assertIn("recording no longer matched what builds the schema", again)
        self.assertIn("ceiling", json.dumps(self.catalog()["kinds"]))
        self.assertNothingLeft()

    def test_a_recording_that_fails_to_replay_is_built_from_the_source(self):
        self.run_project()
        (recording,) = self.recordings()
        data = json.loads(recording.read_text())
        data["statements"].append(["SELECT * FROM sqltx_no_such_table", {}, False])
        recording.write_text(json.dumps(data))
        migrated = self.catalog()
        run = self.run_project()
        self.assertIn("the schema cache's recording failed to replay (", run)
        self.assertIn('relation "sqltx_no_such_table" does not exist', run)
        self.assertIn("so the schema was built from its source and recorded again", run)
        self.assertEqual(self.catalog(), migrated)
        self.assertIn(REPLAYED, self.run_project())
        self.assertNotIn("sqltx_no_such_table", self.recordings()[0].read_text())
        self.assertNothingLeft()

    def test_a_file_that_is_not_a_recording_is_replaced(self):
        self.run_project()
        (recording,) = self.recordings()
        recording.write_text("not a recording")
        run = self.run_project()
        self.assertIn(RECORDED, run)
        self.assertIn(f"{recording} was not a recording nose2-sqltx can read, and was replaced", run)
        self.assertIn(REPLAYED, self.run_project())
        self.assertNothingLeft()

    def test_an_unwritable_cache_costs_only_the_build(self):
        blocker = Path(self.project.parent) / "blocker"
        blocker.write_text("a file where the cache directory's parent should be")
        env = {"SQLTX_CACHE_DIR": str(blocker / "cache")}
        for _ in range(2):
            run = self.run_project(env=env)
            self.assertIn("Ran 5 tests", run)
            self.assertNotIn(RECORDED, run)
            self.assertIn(f"the schema cache {blocker / 'cache' / 'schemas'} cannot be written (", run)
            self.assertIn("so every run builds its schema from the source: point SQLTX_CACHE_DIR at a writable "
                          "directory", run)
        self.assertNothingLeft()

    def test_a_build_with_parameters_a_recording_cannot_hold_is_not_kept(self):
        for _ in range(2):
            run = self.run_project(env={"SQLTX_DATED": "1"})
            self.assertIn("Ran 5 tests", run)
            self.assertNotIn(RECORDED, run)
            self.assertNotIn(REPLAYED, run)
            self.assertIn("; the schema cache cannot keep this build: a statement's parameter is a date, which the "
                          "recording cannot hold\n", run)
            self.assertIn("2020-01-01", json.dumps(self.catalog()["kinds"]))
        self.assertFalse((self.cache_dir / "schemas").exists())
        self.assertNothingLeft()

    def test_a_raw_commit_is_repaired_from_the_recording(self):
        self.run_project()
        migrated = self.catalog()
        run = self.run_project(expect=1, env={"SQLTX_RAW_COMMIT": "1"})
        self.assertIn(REPLAYED, run)
        self.assertIn("FAILED (errors=1)", run)
        self.assertIn("code under test ended the run's transaction 1 time(s)", run)
        # the four tests after it ran on the schema replayed again, with nothing the COMMIT committed
        self.assertIn("Ran 5 tests", run)
        self.assertEqual(self.catalog(), migrated)
        self.assertNothingLeft()

    def test_pytest_and_unittest(self):
        for runner, kind in (("pytest", RECORDED), ("unittest", REPLAYED), ("pytest -n 2", None)):
            with self.subTest(runner=runner):
                run = self.run_project(runner=runner)
                if kind is not None:  # (the workers of pytest -n 2 have summaries of their own, not shown)
                    self.assertIn(kind, run)
                self.assertIn("100% oak", json.dumps(self.catalog()))
        self.assertNothingLeft()

    def test_check_migrations_after_a_replay(self):
        for kind in (RECORDED, REPLAYED):
            with self.subTest(kind=kind):
                run = run_nose2("alembic_drift", set_dsn=False, env=self.env)
                self.assertEqual(run.returncode, 0, run.output)
                self.assertIn(kind, run.stderr)
                # the same migrations against models that moved on: found after the replay too
                run = run_nose2("alembic_drift/drifted", set_dsn=False, env=self.env)
                self.assertEqual(run.returncode, 2, run.output)
                self.assertIn("nose2-sqltx: error: checking the migrations against the models (check-migrations) "
                              "failed: the schema that ../../alembic_schema/alembic.ini's migrations built differs "
                              "from the models in 4 place(s):", run.stderr)
        self.assertNothingLeft()

    def test_parallel_workers(self):
        for kind in ("recorded", "replayed"):
            with self.subTest(kind=kind):
                run = self.run_project("-N", "2")
                self.assertIn("Ran 5 tests", run)
                self.assertEqual(len(self.recordings()), 1)
        self.assertNothingLeft()


MODELS = '''import enum

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Colour(enum.Enum):
    red = 1
    blue = 2


class Shelf(Base):
    __tablename__ = "sqltx_shelf"
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(50), server_default="oak")
    colour: Mapped[Colour] = mapped_column(Enum(Colour, name="sqltx_colour"), default=Colour.red)


class Ledger(Base):
    __tablename__ = "ledger"
    __table_args__ = {"schema": "billing"}
    id: Mapped[int] = mapped_column(primary_key=True)
    shelf_id: Mapped[int] = mapped_column(ForeignKey(Shelf.id))
'''

MODEL_TESTS = '''import os
import unittest

from sqlalchemy import inspect, select

from models import Ledger, Shelf
from nose2_sqltx import DatabaseTest


class TestModels(DatabaseTest, unittest.TestCase):
    def test_rows(self):
        shelf = Shelf()
        self.session.add(shelf)
        self.session.flush()
        self.session.add(Ledger(shelf_id=shelf.id))
        self.session.commit()
        self.assertEqual(self.session.scalars(select(Shelf.label)).all(), ["oak"])
        self.assertEqual(self.session.scalars(select(Ledger.id)).all(), [1])

    def test_columns(self):
        columns = sorted(c["name"] for c in inspect(self.connection).get_columns("sqltx_shelf"))
        self.assertEqual(columns, sorted(Shelf.__table__.columns.keys()))
'''


class TestMetadataOnTheThrowawayServer(ServerTest):
    def setUp(self):
        super().setUp()
        tmp = tempfile.TemporaryDirectory(prefix="sqltx-test-schema-cache-")
        self.addCleanup(tmp.cleanup)
        self.project = Path(tmp.name) / "project"
        self.project.mkdir()
        (self.project / "unittest.cfg").write_text("[unittest]\nplugins = nose2_sqltx\n\n[sqltx]\n"
                                                   "metadata = models:Base\n")
        (self.project / "models.py").write_text(MODELS)
        (self.project / "test_models.py").write_text(MODEL_TESTS)
        self.env["SQLTX_CACHE_DIR"] = str(Path(tmp.name) / "cache")

    def run_models(self):
        env = clean_env(**self.env)
        env["PYTHONPATH"] = f"{self.project}:{env['PYTHONPATH']}"
        proc = subprocess.run([sys.executable, "-m", "nose2", "-v"], cwd=self.project, env=env,
                              capture_output=True, text=True, timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("Ran 2 tests", proc.stderr)
        return proc.stderr

    def test_recorded_replayed_and_rebuilt_when_the_models_change(self):
        self.assertIn(RECORDED, self.run_models())
        self.assertIn(REPLAYED, self.run_models())
        models = self.project / "models.py"
        models.write_text(models.read_text().replace(
            '    shelf_id: Mapped[int] = mapped_column(ForeignKey(Shelf.id))',
            '    shelf_id: Mapped[int] = mapped_column(ForeignKey(Shelf.id))\n'
            '    note: Mapped[str | None] = mapped_column(String(20))').replace(
            'server_default="oak")', 'server_default="oak")\n    depth: Mapped[int | None]'))
        # (the test compares the table's columns with the model's: a stale replay would fail it)
        rebuilt = self.run_models()
        self.assertIn(RECORDED, rebuilt)
        self.assertIn("recording no longer matched what builds the schema", rebuilt)
        self.assertIn(REPLAYED, self.run_models())
        self.assertNothingLeft()


class TestOnADsnServer(CacheTest, FunctionalTest):
    def setUp(self):
        super().setUp()
        self.make_project()
        self.env = {"SQLTX_DSN": dsn(), "SQLTX_CACHE_DIR": str(self.cache_dir)}

    def test_off_by_default(self):
        run = self.run_project(env=self.env)
        self.assertNotIn("schema cache", run)
        self.assertFalse(self.cache_dir.exists())
        self.assertDatabaseUnchanged()

    def test_on_request(self):
        for driver in ("psycopg2", "asyncpg"):
            with self.subTest(driver=driver):
                shutil.rmtree(self.cache_dir, ignore_errors=True)
                env = {**self.env, "SQLTX_DSN": dsn(driver), "SQLTX_SCHEMA_CACHE": "on"}
                self.assertIn(RECORDED, self.run_project(env=env))
                migrated = self.catalog()
                self.assertIn(REPLAYED, self.run_project(env=env))
                self.assertEqual(self.catalog(), migrated)
                self.assertDatabaseUnchanged()


class TestBadValue(CacheTest, OneLineErrorTest):
    def test_a_value_that_is_not_a_choice(self):
        self.make_project()
        fix = ("is not auto, on or off. Write auto (the cache with the throwaway server only), on (with a dsn's "
               "server too) or off")
        for value in ("maybe", "always"):
            with self.subTest(value=value):
                run = self.run_project(expect=2, env={"SQLTX_DSN": dsn(), "SQLTX_SCHEMA_CACHE": value})
                self.assertEqual(run.strip(), f"nose2-sqltx: error: environment variable SQLTX_SCHEMA_CACHE = "
                                 f"{value}: {fix}")
        config = self.project / "unittest.cfg"
        config.write_text(config.read_text() + "schema-cache = sometimes\n")
        run = self.run_project(expect=2, env={"SQLTX_DSN": dsn()})
        self.assertEqual(run.strip(), f"nose2-sqltx: error: [sqltx] schema-cache = sometimes: {fix}")
        self.assertDatabaseUnchanged()
