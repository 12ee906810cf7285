"""Helpers for the project's own tests: real databases, nose2 in a subprocess.

PostgreSQL comes from ``SQLTX_TEST_DSN`` (default: the server on
127.0.0.1:5432, database ``test``), MySQL/MariaDB from
``SQLTX_TEST_MYSQL_DSN`` (default: root on 127.0.0.1:3306, database
``test``); SQLite needs no server. An unreachable database is an error,
never a skip.

The scenario suite runs on every :data:`TARGETS` entry: each database with
each driver, SQLite in memory and in a file. With ``SQLTX_TEST_QUICK=1``
(``bash scripts/test quick``) it runs on one driver per database and the
soak is shorter: for iterating, never instead of the full run. With
``SQLTX_TEST_SHORT_SOAK=1`` only the soak is shorter (the second SQLAlchemy
line of the full run: the long soak, which tests the server's tables, ran
on the first).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
from sqlalchemy.engine import make_url

from nose2_sqltx.sharding import CI_VARIABLES

DSN_ENV = "SQLTX_TEST_DSN"
DEFAULT_DSN = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
MYSQL_DSN_ENV = "SQLTX_TEST_MYSQL_DSN"
DEFAULT_MYSQL_DSN = "mysql+pymysql://root@127.0.0.1:3306/test"
QUICK_ENV = "SQLTX_TEST_QUICK"
#: one driver per database and a shorter soak (scripts/test quick)
QUICK = os.environ.get(QUICK_ENV, "") not in ("", "0")
SHORT_SOAK_ENV = "SQLTX_TEST_SHORT_SOAK"
#: the soak and the long runs with 2,000 tests, not 20,000
SHORT_SOAK = QUICK or os.environ.get(SHORT_SOAK_ENV, "") not in ("", "0")
#: every database/driver the scenario suite runs on; "sqlite-file" is a file
#: in a fresh directory, which must be empty again after the run
ALL_TARGETS = ("postgresql+psycopg2", "postgresql+psycopg", "mysql+pymysql", "mysql+mysqldb", "sqlite", "sqlite-file")
TARGETS = ("postgresql+psycopg2", "mysql+pymysql", "sqlite") if QUICK else ALL_TARGETS
#: every database/async driver the async scenarios run on ("-file": SQLite in a file, as above)
ALL_ASYNC_TARGETS = ("postgresql+asyncpg", "postgresql+psycopg_async", "mysql+aiomysql", "mysql+asyncmy",
                     "sqlite+aiosqlite", "sqlite+aiosqlite-file")
ASYNC_TARGETS = ("postgresql+asyncpg", "mysql+aiomysql", "sqlite+aiosqlite") if QUICK else ALL_ASYNC_TARGETS
#: the databases with a server, each with every driver (quick: one each)
SERVER_TARGETS = tuple(t for t in TARGETS if not t.startswith("sqlite"))
SCENARIOS = Path(__file__).parent / "functional" / "scenarios"
ROOT = Path(__file__).parent.parent
DRIVERS = ("psycopg2", "psycopg")
#: application_name of every connection the runs of this test process make,
#: so that "sessions left open" counts ours only on a shared server
APP_NAME = f"sqltx-test-{os.getpid()}"
#: what scenario runs import from: this checkout and the scenarios' shared schema
PYTHONPATH = os.pathsep.join([str(ROOT), str(SCENARIOS / "common")])


def async_semantics_tests(target: str) -> int:
    """How many tests the async_semantics scenario runs on ``target``, under
    any runner (SQLite in memory: no real commits, and an engine made late is
    a database of its own)."""
    return {"sqlite+aiosqlite": 21, "sqlite+aiosqlite-file": 23}.get(target, 24)


def dsn(driver: str = "psycopg2") -> str:
    """The test database's URL, for the given driver."""
    url = make_url(os.environ.get(DSN_ENV) or DEFAULT_DSN)
    url = url.set(drivername=f"postgresql+{driver}").update_query_dict({"application_name": APP_NAME})
    return url.render_as_string(hide_password=False)


def mysql_dsn(driver: str = "pymysql") -> str:
    """The MySQL/MariaDB test server's URL, for the given driver."""
    url = make_url(os.environ.get(MYSQL_DSN_ENV) or DEFAULT_MYSQL_DSN).set(drivername=f"mysql+{driver}")
    return url.render_as_string(hide_password=False)


#: where pytest runs of the scenarios make their temporary directories (pytest-xdist
#: always makes one), instead of /tmp/pytest-of-<user>: removed when this process ends
PYTEST_TEMP = tempfile.TemporaryDirectory(prefix="sqltx-pytest-")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any SQLTX_ variable or CI job
    variable that picks a shard (a run must see only what the test gives
    it), with the scenarios' PYTHONPATH, plus ``extra``."""
    ci = {name for _, index, total, _ in CI_VARIABLES for name in (index, total)}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQLTX_") and k not in ci}
    env["PYTHONPATH"] = PYTHONPATH
    env["PYTEST_DEBUG_TEMPROOT"] = PYTEST_TEMP.name
    env.update(extra)
    return env


def each_target(*targets: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Run a ``FunctionalTest`` method taking ``target`` once per target, as
    a test of its own (``test_x__mysql_pymysql``); none given: :data:`TARGETS`.
    Targets a quick run leaves out are left out here too."""

    def mark(method: Callable[..., None]) -> Callable[..., None]:
        known = (*TARGETS, *ASYNC_TARGETS)
        method._targets = tuple(t for t in (targets or TARGETS) if t in known)  # type: ignore[attr-defined]
        return method

    return mark


def target_dsn(target: str, directory: str | None = None) -> str:
    """The URL a scenario run on ``target`` uses (``directory``: for sqlite-file)."""
    if target.startswith("postgresql+"):
        return dsn(target.split("+")[1])
    if target.startswith("mysql+"):
        return mysql_dsn(target.split("+")[1])
    if target in ("sqlite", "sqlite+aiosqlite"):
        return f"{target}://"
    if target.startswith("sqlite") and target.endswith("-file") and directory is not None:
        return f"{target.removesuffix('-file')}:///{directory}/run.db"
    raise ValueError(f"unknown target {target!r}")


def mysql_connect() -> Any:
    import pymysql

    url = make_url(mysql_dsn())
    return pymysql.connect(host=url.host or "127.0.0.1", port=url.port or 3306, user=url.username or "root",
                           password=url.password or "", database=url.database, connect_timeout=5)


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
    import pymysql

    try:
        mysql_connect().close()
    except pymysql.Error as exc:
        raise RuntimeError(
            f"the MySQL/MariaDB test database is unreachable ({exc}); "
            f"start the server or point {MYSQL_DSN_ENV} at one"
        ) from None


@dataclass(frozen=True)
class Snapshot:
    tables: tuple[str, ...]
    schemas: tuple[str, ...]
    sessions: int  # connections made by this process's runs (APP_NAME)
    mysql_databases: tuple[str, ...] = ()
    mysql_tables: tuple[str, ...] = ()  # in the DSN's database
    mysql_sessions: int = 0  # other connections of the test user


def mysql_snapshot() -> tuple[tuple[str, ...], tuple[str, ...], int]:
    conn = mysql_connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT schema_name FROM information_schema.schemata ORDER BY 1")
            databases = tuple(r[0] for r in cur.fetchall())
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY 1")
            tables = tuple(r[0] for r in cur.fetchall())
            cur.execute("SELECT count(*) FROM information_schema.processlist "
                        "WHERE id <> CONNECTION_ID() AND user = SUBSTRING_INDEX(CURRENT_USER(), '@', 1) "
                        "AND command NOT IN ('Daemon', 'Binlog Dump')")
            sessions = int(cur.fetchone()[0])
    finally:
        conn.close()
    return databases, tables, sessions


def snapshot() -> Snapshot:
    """What exists in the test databases now (user tables, schemas, databases, other sessions)."""
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
    return Snapshot(tables, schemas, sessions, *mysql_snapshot())


def wait_for_sessions_to_end(seconds: float = 10, mysql_sessions: int = 0) -> Snapshot:
    """The server ends a backend a moment after its client is gone."""
    deadline = time.monotonic() + seconds
    current = snapshot()
    while (current.sessions or current.mysql_sessions > mysql_sessions) and time.monotonic() < deadline:
        time.sleep(0.05)
        current = snapshot()
    return current


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    runner: str = "nose2"

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


#: the runners the scenarios run under, and their command lines (after ``python -m``)
RUNNERS = {
    "nose2": ["nose2"],
    "nose2 -N 2": ["nose2", "-N", "2"],
    # no cache directory left in the scenario
    "pytest": ["pytest", "-p", "no:cacheprovider"],
    "pytest -n 2": ["pytest", "-p", "no:cacheprovider", "-n", "2"],
    "unittest": ["unittest", "discover"],
}


def run_nose2(scenario: str, *args: str, driver: str = "psycopg2", env: dict[str, str] | None = None,
              set_dsn: bool = True, timeout: float = 300, verbose: bool = True, target: str | None = None,
              runner: str = "nose2") -> Run:
    """Run ``python -m nose2 [-v]`` (or another of :data:`RUNNERS`) in
    scenario directory ``scenario``, on PostgreSQL with ``driver``, or on
    ``target`` (see :data:`TARGETS`)."""
    full_env = clean_env()
    if set_dsn:
        full_env["SQLTX_DSN"] = target_dsn(target) if target else dsn(driver)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", *RUNNERS[runner], *(["-v"] if verbose else []), *args],
        cwd=SCENARIOS / scenario, env=full_env, capture_output=True, text=True, timeout=timeout,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr, runner)


@contextmanager
def slow_run(env: dict[str, str] | None = None, set_dsn: bool = True,
             target: str | None = None, block: str = "sleep", runner: str = "nose2",
             scenario: str = "signals", args: Sequence[str] = ()) -> Iterator[subprocess.Popen[str]]:
    """A nose2 run of the ``signals`` scenario, held inside its only test
    (schema created, transaction open) until the block ends: ``block`` says
    where it waits (``sleep``: in Python; ``query``: in a long statement;
    ``lock``: for a lock another connection holds). Another ``scenario``
    (with ``args`` for the runner) holds the run as it likes, and writes the
    file named in SQLTX_MARKER once it does."""
    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "ready"
        env = clean_env(SQLTX_MARKER=str(marker), SQLTX_BLOCK=block, **(env or {}))
        if set_dsn:
            env["SQLTX_DSN"] = target_dsn(target, tmp) if target else dsn()
        proc = subprocess.Popen(
            [sys.executable, "-m", *RUNNERS[runner], "-v", *args], cwd=SCENARIOS / scenario, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            # A shell's background job ignores SIGINT, and its children would
            # too: the run gets Ctrl-C as it would in a terminal, however the
            # suite was started.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, method in list(vars(cls).items()):
            targets = getattr(method, "_targets", None)
            if targets is None:
                continue
            delattr(cls, name)
            for target in targets:
                bound = _bound(method, target)
                bound.__name__ = bound.__qualname__ = f"{name}__{target.replace('+', '_').replace('-', '_')}"
                setattr(cls, bound.__name__, bound)

    @classmethod
    def setUpClass(cls) -> None:
        require_database()

    def setUp(self) -> None:
        self.before = snapshot()

    def assertDatabaseUnchanged(self) -> None:
        after = wait_for_sessions_to_end(mysql_sessions=self.before.mysql_sessions)
        self.assertEqual(after.tables, self.before.tables, "tables left behind")
        self.assertEqual(after.schemas, self.before.schemas, "schemas left behind")
        self.assertEqual(after.sessions, 0, "connections left open")
        self.assertEqual(after.mysql_databases, self.before.mysql_databases, "MySQL databases left behind")
        self.assertEqual(after.mysql_tables, self.before.mysql_tables, "MySQL tables left behind")
        self.assertLessEqual(after.mysql_sessions, self.before.mysql_sessions, "MySQL connections left open")

    def run_scenario(self, scenario: str, *args: str, expect: int = 0, target: str | None = None,
                     **kwargs: object) -> Run:
        """Run a scenario (on ``target``), check its exit status and that it left nothing behind."""
        if target is not None and target.endswith("-file"):
            # A file in a fresh directory: the run makes it, and must remove it.
            with tempfile.TemporaryDirectory() as tmp:
                env: Any = {**(kwargs.pop("env", None) or {}), "SQLTX_DSN": target_dsn(target, tmp)}  # type: ignore[dict-item]
                run = run_nose2(scenario, *args, env=env, **kwargs)  # type: ignore[arg-type]
                left = sorted(os.listdir(tmp))
            self.assertEqual(left, [], f"files left by the run:\n{run.output}")
        else:
            run = run_nose2(scenario, *args, target=target, **kwargs)  # type: ignore[arg-type]
        self.assertEqual(run.returncode, expect, f"{run.runner} exited {run.returncode}:\n{run.output}")
        self.assertDatabaseUnchanged()
        return run

    def assertRan(self, run: Run, tests: int) -> None:
        if run.runner.startswith("pytest"):
            # pytest's last line: "3 passed, 1 failed, 1 skipped in 0.2s" (errors at set-up or teardown are not tests)
            last = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
            counts = re.findall(r"(\d+) (passed|failed|skipped|xfailed|xpassed)", last)
            self.assertEqual(sum(int(n) for n, _ in counts), tests, run.output)
        else:
            self.assertIn(f"Ran {tests} test", run.stderr, run.output)


def _bound(method: Callable[..., None], target: str) -> Callable[[Any], None]:
    def test(self: Any) -> None:
        method(self, target)

    test.__doc__ = method.__doc__
    return test
