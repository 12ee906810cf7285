"""One test run's life, for any runner: settings in, a started ``IsolatedDatabase`` out.

Every runner adapter (nose2, pytest, ``python -m unittest``) does the same
few steps around its tests: import what ``[sqltx]`` names, start the
throwaway server if no ``dsn`` is set, match the run's driver to the app
and the test classes, start the run (in a schema of its own for a parallel
worker), and at the end roll back, stop the server and say how it went.
:class:`TestRun` is those steps; the adapters only decide when to call them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from .config import Loaded, Settings, load_objects
from .driver_match import run_url
from .environment import NAMED_DSN_ENV
from .errors import ConfigError
from .isolation import IsolatedDatabase
from .messages import mask_url
from .server import TemporaryPostgres

__unittest = True

__all__ = ["TestRun", "make_database"]


def make_database(settings: Settings, url: URL, loaded: Loaded, *, parallel: int = 0,
                  trusted: bool = False, others: Mapping[str, IsolatedDatabase] | None = None,
                  schema_cache: bool = False) -> IsolatedDatabase:
    """The run's :class:`IsolatedDatabase` as ``settings`` describe it.
    ``parallel``: a parallel worker's run, one of this many; ``trusted``:
    the database is the run's own throwaway server (the production guard
    has nothing to protect); ``others``: the run's other databases;
    ``schema_cache``: keep the schema's builds in the schema cache."""
    return IsolatedDatabase(
        url, metadata=() if settings.check_migrations else loaded.metadata,
        models=loaded.metadata if settings.check_migrations else (), fixtures=loaded.fixtures,
        redirect=loaded.redirect, parallel=parallel,
        create_database=settings.create_database, alembic=settings.alembic,
        allow_databases=settings.allow_databases, trusted=trusted,
        lock_timeout_ms=settings.lock_timeout_ms, statement_timeout_ms=settings.statement_timeout_ms,
        reset_sequences=settings.reset_sequences, schemas=settings.schemas, show_queries=settings.show_queries,
        flask_session=settings.flask_session, others=others, schema_cache=schema_cache,
        async_test_loop=settings.async_test_loop,
    )


def _where(url: URL) -> tuple[Any, ...] | None:
    """Which database ``url`` names (None: one of its own, an in-memory SQLite)."""
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return None
    return (url.get_backend_name(), url.host, url.port, url.query.get("host"), url.query.get("port"), url.database)


def _database_on_server(server: URL, name: str) -> URL:
    """``server`` (the run's throwaway server) with a database ``name`` on it, made if it is not there yet."""
    url = server.set(database=name)
    # (psycopg2, which the package installs: the run's own driver may be an async one)
    engine = create_engine(server.set(drivername="postgresql+psycopg2"), poolclass=NullPool,
                           isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}) is None:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return url


class TestRun:
    """A run outside nose2's hooks: :meth:`start`, the tests, :meth:`stop`.

    ``worker``: a parallel worker's run (its own schema), one of ``workers``
    (0: as ``settings`` say, which the main process of nose2 -N fills in;
    else unknown, counted as one). ``main_server``:
    the URL of a throwaway server another process (the main one of a
    parallel run) started for this run; it wins over ``settings``' dsn.
    """

    __test__ = False  # not a test class, whatever pytest's name rules say

    def __init__(self, settings: Settings, *, worker: bool = False, workers: int = 0,
                 main_server: str | None = None) -> None:
        self.settings = settings
        self.worker = worker
        self.workers = max(workers or settings.workers, 1)
        self.main_server = main_server
        self.server: TemporaryPostgres | None = None
        self.database: IsolatedDatabase | None = None
        #: the main process of a parallel run: the database its workers will use, checked (see :meth:`preflight`)
        self.preflighted: IsolatedDatabase | None = None
        self.url: URL | None = None
        self._summary = ""

    def start_server(self) -> URL:
        """The URL tests connect to: the dsn's, or a throwaway server started now."""
        if self.main_server is not None:
            return self.settings.with_dsn(self.main_server, "the main process's server").url  # type: ignore[return-value]
        if self.settings.url is not None:
            return self.settings.url
        s = self.settings
        self.server = TemporaryPostgres(bindir=s.pg_bindir, keep=s.keep_server, tcp=s.server_tcp,
                                        base_dir=s.server_dir, version=s.server_version)
        self.server.start()
        return self.server.url

    @property
    def throwaway(self) -> bool:
        """Whether the run's server is its own (here, or the main process's):
        the production guard has nothing to protect there."""
        return self.server is not None or self.main_server is not None or self.settings.from_main_server

    def start(self, async_tests: str | None = None, *, matched: bool = False) -> IsolatedDatabase:
        """Start the run: ``async_tests`` names an ``AsyncDatabaseTest`` class
        of the run, if any (its driver must be async); ``matched``: the URL's
        driver was matched already (by the main process of a parallel run).
        On an error nothing is left running."""
        try:
            loaded = load_objects(self.settings)  # a typo should not cost a server start
            named = [(name, settings, load_objects(settings)) for name, settings in self.settings.databases]
            url = self.start_server()
            self.url = url if matched else run_url(url, self.settings, loaded, async_tests=async_tests,
                                                   throwaway=self.throwaway)
            parallel = self.workers if self.worker else 0
            if matched and self.url.get_dialect().is_async:
                # (a worker sees only its share of the test classes: the main process saw async ones)
                async_tests = async_tests or "an AsyncDatabaseTest class of the run"
            others = self._others(named, parallel, async_tests)
            self.database = make_database(self.settings, self.url, loaded, parallel=parallel,
                                          trusted=self.throwaway, others=others,
                                          schema_cache=self.settings.caches_schema(self.throwaway))
            self.database.start()
        except BaseException:
            self.database = None
            self.stop_server()
            raise
        return self.database

    def preflight(self, async_tests: str | None = None) -> URL:
        """For the main process of a parallel run, before its workers start:
        the objects import, the server is reachable and the production guard
        lets it through, once, so that a mistake is one line and not one per
        worker. Connects once and makes nothing; the server (if one was
        started) stays up for the workers. Returns the URL they should use."""
        loaded = load_objects(self.settings)
        named = [(name, settings, load_objects(settings)) for name, settings in self.settings.databases]
        url = self.start_server()
        self.url = run_url(url, self.settings, loaded, async_tests=async_tests, throwaway=self.throwaway)
        self.preflighted = make_database(self.settings, self.url, loaded, parallel=self.workers,
                                         trusted=self.throwaway, others=self._others(named, self.workers, async_tests))
        try:
            self.preflighted.preflight()
        except BaseException:
            self.preflighted.close_preflight()
            raise
        return self.url

    def _others(self, named: list[tuple[str, Settings, Loaded]], parallel: int,
                async_tests: str | None) -> dict[str, IsolatedDatabase]:
        """The run's other databases (``[sqltx:<name>]``), not started, each
        URL's driver matched as the run's own is (``async_tests``). One with no
        dsn, in a run on a throwaway server, is a database of that name on
        the server; no two of the run's databases may be one."""
        assert self.url is not None
        taken = {_where(self.url): "[sqltx]"}
        others = {}
        for name, settings, loaded in named:
            url, trusted = settings.url, False
            if url is None:
                if not self.throwaway:
                    raise ConfigError("dsn", None, "is not set, and the run's database is not a throwaway server "
                                      "to make this one on", f"Set dsn under [sqltx:{name}] (or "
                                      f"{NAMED_DSN_ENV.format(name.upper())})", section=f"sqltx:{name}")
                url, trusted = _database_on_server(self.url, name), True
            try:
                url = run_url(url, settings, loaded, async_tests=async_tests, throwaway=trusted)
            except ConfigError as exc:
                raise exc.in_section(f"sqltx:{name}") from exc
            where = _where(url)
            if where is not None and where in taken:
                raise ConfigError(settings.dsn_source, mask_url(url), f"is the database of {taken[where]} too: each "
                                  "database of the run must be one of its own", "Give each section the URL of "
                                  "a database of its own", section=f"sqltx:{name}")
            taken[where] = f"[sqltx:{name}]"
            others[name] = make_database(settings, url, loaded, parallel=parallel, trusted=trusted,
                                         schema_cache=self.settings.caches_schema(trusted))
        return others

    def stop(self) -> list[Exception]:
        """Roll back and close, stop the server; the problems found (the run
        fails on them). Safe to call twice."""
        database, self.database = self.database, None
        server = self.server
        problems: list[Exception] = []
        if self.preflighted is not None:
            self.preflighted.close_preflight()
        try:
            if database is not None:
                database.stop()
        except Exception as exc:  # noqa: BLE001 - the run's error, whatever it is
            problems.append(exc)
        finally:
            try:
                self.stop_server()
            except Exception as exc:  # noqa: BLE001 - the run's error, whatever it is
                problems.append(exc)
        described = server.describe() if server is not None else None
        if database is not None:
            self._summary = database.summary(described)
        elif self.preflighted is not None:
            self._summary = self.preflighted.summary(described, ran=False)
        return problems

    def stop_server(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()

    def summary(self) -> str:
        """The report's last line (after :meth:`stop`)."""
        return self._summary

    def __enter__(self) -> TestRun:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
