"""The schema cache's parts that need no database: keys, placeholders, eviction."""

import os
import sys
import tempfile
import time
import unittest
from datetime import date
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table
from sqlalchemy.dialects import postgresql

from nose2_sqltx.schemacache import PLACEHOLDER, _evict, _hide, _many, _plain, _show, alembic_sources, metadata_ddl


class TestKeys(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = Path(tmp.name)

    def test_metadata_ddl_follows_the_tables(self):
        def ddl(length):
            metadata = MetaData()
            Table("shelf", metadata, Column("id", Integer, primary_key=True), Column("label", String(length)))
            return metadata_ddl([metadata], postgresql.dialect())

        self.assertEqual(ddl(50), ddl(50))
        self.assertNotEqual(ddl(50), ddl(80))
        self.assertIn("VARCHAR(80)", "".join(ddl(80)))

    def test_alembic_sources_cover_the_scripts_and_the_projects_modules(self):
        project = self.dir / "project"
        (project / "migrations" / "versions").mkdir(parents=True)
        (project / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s/migrations\n")
        (project / "migrations" / "env.py").write_text("import json\nimport sqlalchemy\nimport helpers_a\n")
        (project / "migrations" / "versions" / "r1.py").write_text("from helpers_b import VALUE\n")
        (project / "helpers_a.py").write_text("X = 1\n")
        (project / "helpers_b.py").write_text("from helpers_c import Y as VALUE\n")  # and through it
        (project / "helpers_c.py").write_text("Y = 2\n")
        sys.path.insert(0, str(project))
        self.addCleanup(sys.path.remove, str(project))
        files = {Path(path).name for path, _ in alembic_sources(str(project / "alembic.ini"))}
        self.assertEqual(files, {"alembic.ini", "env.py", "r1.py", "helpers_a.py", "helpers_b.py", "helpers_c.py"})
        before = alembic_sources(str(project / "alembic.ini"))
        (project / "helpers_c.py").write_text("Y = 3\n")
        self.assertNotEqual(alembic_sources(str(project / "alembic.ini")), before)


class TestRecordingValues(unittest.TestCase):
    def test_the_runs_schema_name_is_a_placeholder(self):
        run = "sqltx_run_0123456789ab"
        statement = f"CREATE TABLE {run}_billing.ledger (id int)"
        hidden = _hide([statement, {"schema": run}], run)
        self.assertNotIn(run, str(hidden))
        self.assertIn(PLACEHOLDER, hidden[0])
        other = "sqltx_run_ba9876543210"
        self.assertEqual(_show(hidden, other), [f"CREATE TABLE {other}_billing.ledger (id int)", {"schema": other}])

    def test_parameters_json_cannot_hold_are_refused(self):
        self.assertEqual(_plain({"a": (1, "x", None)}), {"a": [1, "x", None]})
        with self.assertRaises(TypeError) as caught:
            _plain({"since": date(2020, 1, 1)})
        self.assertEqual(str(caught.exception), "a statement's parameter is a date, which the recording cannot hold")


class TestExecuteMany(unittest.TestCase):
    def test_several_parameter_sets_whatever_the_event_says(self):
        rows = [{"name": "wall"}, {"name": "floor"}]
        self.assertTrue(_many(rows, False, None))  # (SQLAlchemy 2.0's psycopg2 executemany)
        self.assertFalse(_many({"name": "wall"}, True, None))  # (one INSERT of many rows)
        self.assertFalse(_many(("wall", "floor"), False, None))
        self.assertTrue(_many([("wall",), ("floor",)], True, None))


class TestEviction(unittest.TestCase):
    def test_the_least_recently_used_go(self):
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            now = time.time()
            for i in range(5):
                path = directory / f"r{i}.json"
                path.write_text("{}")
                os.utime(path, (now - 100 * i, now - 100 * i))
            killed = directory / "r9.json.partial-123"
            killed.write_text("")
            os.utime(killed, (now - 7200, now - 7200))
            writing = directory / "r8.json.partial-456"
            writing.write_text("")
            _evict(directory, 3)
            self.assertEqual(sorted(p.name for p in directory.iterdir()),
                             ["r0.json", "r1.json", "r2.json", "r8.json.partial-456"])
