"""Helpers for the project's own tests: real databases, nose2 in a subprocess.

The database comes from ``SQLTX_TEST_DSN`` (default: the PostgreSQL server
on 127.0.0.1:5432, database ``test``). An unreachable database is an error,
never a skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import unittest
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from sqlalchemy.engine import make_url

DSN_ENV = "SQLTX_TEST_DSN"
DEFAULT_DSN = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
SCENARIOS = Path(__file__).parent / "functional" / "scenarios"
ROOT = Path(__file__).parent.parent
DRIVERS = ("psycopg2", "psycopg")
#: application_name of every connection the runs of this test process make,
#: so that "sessions left open" counts ours only on a shared server
APP_NAME = f"sqltx-test-{os.getpid()}"
#: what scenario runs import from: this checkout and the scenarios' shared schema
PYTHONPATH = os.pathsep.join([str(ROOT), str(SCENARIOS / "common")])


def dsn(driver: str = "psycopg2") -> str:
    """The test database's URL, for the given driver."""
    url = make_url(os.environ.get(DSN_ENV) or DEFAULT_DSN)
    url = url.set(drivername=f"postgresql+{driver}").update_query_dict({"application_name": APP_NAME})
    return url.render_as_string(hide_password=False)


def libpq_dsn() -> str:
    url = make_url(dsn())
    parts = {"host": url.host, "port": url.port, "user": url.username, "password": url.password, "dbname": url.database}
    return " ".join(f"{k}={v}" for k, v in parts.items() if v is not None) + " application_name=sqltx-snapshot"


def require_database() -> None:
    """Fail (not skip) the calling module when the test database is unreachable."""
    try:
        psycopg2.connect(libpq_dsn(), connect_timeout=5).close()
    except psycopg2.OperationalError as exc:
        raise RuntimeError(
            f"the test database is unreachable ({str(exc).strip().splitlines()[0]}); "
            f"start PostgreSQL or point {DSN_ENV} at one"
        ) from None


@dataclass(frozen=True)
class Snapshot:
    tables: tuple[str, ...]
    schemas: tuple[str, ...]
    sessions: int  # connections made by this process's runs (APP_NAME)


def snapshot() -> Snapshot:
    """What exists in the test database now (user tables, schemas, other sessions)."""
    conn = psycopg2.connect(libpq_dsn())
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT schemaname || '.' || tablename FROM pg_tables "
                "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
            )
            tables = tuple(r[0] for r in cur.fetchall())
            cur.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                "AND nspname NOT IN ('information_schema') ORDER BY 1"
            )
            schemas = tuple(r[0] for r in cur.fetchall())
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (APP_NAME,))
            sessions = cur.fetchone()[0]
    finally:
        conn.close()
    return Snapshot(tables, schemas, sessions)


def wait_for_sessions_to_end(seconds: float = 10) -> Snapshot:
    """The server ends a backend a moment after its client is gone."""
    deadline = time.monotonic() + seconds
    current = snapshot()
    while current.sessions and time.monotonic() < deadline:
        time.sleep(0.05)
        current = snapshot()
    return current


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_nose2(scenario: str, *args: str, driver: str = "psycopg2", env: dict[str, str] | None = None,
              set_dsn: bool = True, timeout: float = 300, verbose: bool = True) -> Run:
    """Run ``python -m nose2 [-v]`` in scenario directory ``scenario``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SQLTX_")}
    full_env["PYTHONPATH"] = PYTHONPATH
    if set_dsn:
        full_env["SQLTX_DSN"] = dsn(driver)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "nose2", *(["-v"] if verbose else []), *args],
        cwd=SCENARIOS / scenario, env=full_env, capture_output=True, text=True, timeout=timeout,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


@contextmanager
def slow_run(env: dict[str, str] | None = None, set_dsn: bool = True) -> Iterator[subprocess.Popen[str]]:
    """A nose2 run of the ``signals`` scenario, held inside its only test
    (schema created, transaction open) until the block ends."""
    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "ready"
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("SQLTX_")},
               "PYTHONPATH": PYTHONPATH, "SQLTX_MARKER": str(marker), **(env or {})}
        if set_dsn:
            env["SQLTX_DSN"] = dsn()
        proc = subprocess.Popen(
            [sys.executable, "-m", "nose2", "-v"], cwd=SCENARIOS / "signals", env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not marker.exists():
                if proc.poll() is not None:
                    raise AssertionError(f"nose2 ended before its test started:\n{proc.communicate()[1]}")
                if time.monotonic() > deadline:
                    raise AssertionError("the slow run's test never started")
                time.sleep(0.05)
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


class FunctionalTest(unittest.TestCase):
    """Checks that every run leaves the database exactly as it found it."""

    maxDiff = None

    @classmethod
    def setUpClass(cls) -> None:
        require_database()

    def setUp(self) -> None:
        self.before = snapshot()

    def assertDatabaseUnchanged(self) -> None:
        after = wait_for_sessions_to_end()
        self.assertEqual(after.tables, self.before.tables, "tables left behind")
        self.assertEqual(after.schemas, self.before.schemas, "schemas left behind")
        self.assertEqual(after.sessions, 0, "connections left open")

    def run_scenario(self, scenario: str, *args: str, expect: int = 0, **kwargs: object) -> Run:
        run = run_nose2(scenario, *args, **kwargs)  # type: ignore[arg-type]
        self.assertEqual(run.returncode, expect, f"nose2 exited {run.returncode}:\n{run.output}")
        self.assertDatabaseUnchanged()
        return run

    def assertRan(self, run: Run, tests: int) -> None:
        self.assertIn(f"Ran {tests} test", run.stderr, run.output)
