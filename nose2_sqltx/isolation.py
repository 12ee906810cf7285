"""The core: one run-long transaction, scopes as savepoints, handles for tests.

Knows nothing about nose2. :class:`IsolatedDatabase` is a context manager; so
is :meth:`IsolatedDatabase.scope`::

    with IsolatedDatabase(url, metadata=[Base.metadata]) as db:
        with db.scope() as scope:            # e.g. a test class
            scope.session.add(User(name="a"))
            scope.session.commit()           # a savepoint release, not a commit
            with db.scope() as inner:        # e.g. a test
                ...                          # sees "a"; its own work is undone
    # nothing of the run is left in the database

Life cycle: :meth:`~IsolatedDatabase.start` opens one connection and one
transaction, sets the timeouts, creates the schema and runs the fixtures.
Where DDL is not transactional (MySQL/MariaDB), the schema is created and
committed just before the transaction opens, in a database the backend makes
for the run and drops at the end (see :mod:`nose2_sqltx.dialects.mysql`).
Each :meth:`~IsolatedDatabase.begin_scope` sets a savepoint; each
:meth:`~IsolatedDatabase.end_scope` rolls back to it and releases it.
:meth:`~IsolatedDatabase.stop` rolls back everything and closes.
"""

from __future__ import annotations

import os
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, create_engine, delete, event, inspect
from sqlalchemy.schema import DropSchema
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool, StaticPool

from .apps import Redirection, is_unwatched, is_write, names_of
from .config import mask_url
from .dialects import Backend, backend_for
from .dialects.base import exception_chain, first_line
from .errors import (
    ConfigError,
    DatabaseChangedError,
    DatabaseUnavailableError,
    LeakError,
    NotActiveError,
    SetupError,
    TransactionEndedError,
    UnsafeDatabaseError,
)
from .guard import Guard, _short
from .server import is_throwaway

__unittest = True

__all__ = ["IsolatedDatabase", "Scope", "active_database", "current"]

Fixture = Callable[[Connection], object]

_active: IsolatedDatabase | None = None
#: what Alembic's env.py gets as sqlalchemy.url: a URL no dialect answers to
_NO_ALEMBIC_URL = "nose2_sqltx_gives_env_py_a_connection://"
_active_lock = threading.Lock()


def active_database(what: str = "nose2-sqltx") -> IsolatedDatabase:
    """The running :class:`IsolatedDatabase`, or :class:`NotActiveError`."""
    if _active is None:
        raise NotActiveError(what)
    return _active


def current() -> Scope:
    """The innermost open scope of the running database: the current test's,
    else its class's, else the run's (as seen by fixture callables).

    Use it where a TestCase attribute cannot reach, e.g. in an app factory::

        app = create_app(engine=nose2_sqltx.current().engine)
    """
    return active_database("nose2_sqltx.current()").current_scope


def looks_like_test(name: str) -> bool:
    """Whether a database name looks like a test database: one of its words
    starts or ends with "test" (``test``, ``app_test``, ``test_app``, ``testing``)."""
    return any(word.startswith("test") or word.endswith("test") for word in re.split(r"[^a-z]+", name.lower()))


class _RunPool(StaticPool):
    """The run's one connection, for every engine that points at it.

    App code may call ``engine.dispose()`` (an app factory, a fork guard):
    that must not close the run's connection, nor make the engine open a new
    one outside the test transaction. Only the owner disposes it, at the end.
    """

    _sqltx_closing = False

    def dispose(self) -> None:
        if self._sqltx_closing:
            super().dispose()

    def recreate(self) -> _RunPool:
        return self


def _on_execute(conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any,
                executemany: bool) -> None:
    """Every statement of every Engine in the process (while a run is active)."""
    database = _active
    if database is not None:
        database._seen(conn.engine, statement, context)


class Scope:
    """One level of isolation (the run, a class, a test) and its handles.

    ``engine``: an Engine whose every connection is the test transaction.
    ``connection`` and ``session`` are made on first use and closed when the
    scope ends. All handles share one transaction: a commit through any of
    them keeps the work until the scope ends; a rollback through any of them
    undoes everything since the last commit.
    """

    def __init__(self, database: IsolatedDatabase, depth: int, setup: Callable[[], object] | None) -> None:
        self.database = database
        self.depth = depth
        self.savepoint = f"sqltx_{depth}"
        self.setup = setup
        self._connection: Connection | None = None
        self._session: Session | None = None
        self.closed = False
        #: the SQL that went through the scope's handles and the app's
        #: redirected engines while this was the innermost scope, in order
        self.queries: list[str] = []
        #: the scope really commits (:meth:`IsolatedDatabase.begin_scope`)
        self.real_commits = False
        self._leaks_before = len(database.leaks)

    @property
    def engine(self) -> Engine:
        return self.database._engine_for(self)

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            self._check_open()
            self._connection = self.engine.connect()
        return self._connection

    @property
    def session(self) -> Session:
        if self._session is None:
            self._check_open()
            self._session = Session(bind=self.engine)
        return self._session

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError(f"this database scope (depth {self.depth}) has ended; use the current one")

    def _close_handles(self) -> None:
        # Called with the guard quiet: their rollbacks are no-ops, because the
        # whole scope is rolled back right after.
        for handle in (self._session, self._connection):
            if handle is not None:
                try:
                    handle.close()
                except Exception:  # noqa: BLE001 - the scope rollback below decides
                    pass
        self._session = self._connection = None
        self.closed = True

    def _reopen(self, depth: int) -> None:
        self.depth = depth
        self.savepoint = f"sqltx_{depth}"
        self.closed = False
        self.queries = []

    def __enter__(self) -> Scope:
        return self

    def __exit__(self, *exc: object) -> None:
        self.database.end_scope(self)

    def __repr__(self) -> str:
        return f"<Scope depth={self.depth} {'closed' if self.closed else 'open'}>"


class IsolatedDatabase:
    """A database whose every change during the run is rolled back at the end.

    ``url``: a SQLAlchemy URL (string or :class:`~sqlalchemy.engine.URL`).
    ``metadata``: MetaData objects (or anything with a ``.metadata``, such as a
    declarative Base) whose tables are created inside the run's transaction.
    ``fixtures``: callables run once, in order, with the run's Connection,
    after the schema exists; what they write is seen by every test.
    ``lock_timeout_ms`` / ``statement_timeout_ms``: server timeouts (0: off).
    ``schema``: create the tables in a schema of this name, made (and gone)
    with the run's transaction, so that several runs can share one database
    at once (nose2's parallel workers). Tables that name their own schema
    cannot be shared that way and are refused. Backends where every run
    has a database of its own anyway (MySQL, SQLite in memory) need no schema.
    ``create_database`` (MySQL/MariaDB): make a database for the run (the
    default); if false, create the tables in the DSN's database and drop them
    at the end.
    ``redirect``: the app's Engines, sessionmakers, scoped_sessions and
    Flask-SQLAlchemy ``db`` objects, by name, pointed at the run for its
    duration (see :mod:`nose2_sqltx.apps`).
    ``alembic``: an alembic.ini whose ``upgrade head`` makes the schema, on
    the run's connection, instead of ``metadata``.
    ``allow_databases``: database names the production guard lets through;
    ``trusted``: skip the guard (a server the caller made for the run; a
    :class:`~nose2_sqltx.server.TemporaryPostgres` of this process is trusted anyway).

    Writes through any other Engine of the process are refused while the run
    is active (:class:`~nose2_sqltx.errors.LeakError`), and :meth:`stop`
    checks that the database's schemas and tables are as :meth:`start`
    found them (:class:`~nose2_sqltx.errors.DatabaseChangedError`).
    """

    def __init__(
        self,
        url: str | URL,
        *,
        metadata: Sequence[Any] = (),
        fixtures: Sequence[Fixture] = (),
        lock_timeout_ms: int = 10_000,
        statement_timeout_ms: int = 60_000,
        schema: str | None = None,
        create_database: bool = True,
        redirect: Mapping[str, Any] | None = None,
        alembic: str | None = None,
        allow_databases: Sequence[str] = (),
        trusted: bool = False,
    ) -> None:
        self.url = make_url(url) if isinstance(url, str) else url
        self.backend: Backend = backend_for(self.url, create_database=create_database)
        self.metadata: list[MetaData] = [_as_metadata(m) for m in metadata]
        self.backend.check_tables([t for m in self.metadata for t in m.sorted_tables])
        self.schema = schema
        self._namespace_sql = self.backend.private_namespace_sql(schema) if schema is not None else []
        if self._namespace_sql:
            named = sorted(t.fullname for m in self.metadata for t in m.tables.values() if t.schema)
            if named:
                raise SetupError(
                    "sharing the database between parallel workers",
                    f"tables in named schemas ({', '.join(named)}) would be created by every worker in "
                    "the same schema, and the workers would wait on each other; run without -N",
                )
        self.fixtures = list(fixtures)
        self.redirection = Redirection(redirect or {})
        self.alembic = alembic
        self.allow_databases = tuple(allow_databases)
        self.trusted = trusted
        self.leaks: list[LeakError] = []
        self.run_url: URL | None = None
        self._catalog: frozenset[str] | None = None
        self._log: list[str] | None = None
        self._watching = False
        self._committed_engine: Engine | None = None
        self._committed_depth: int | None = None
        self._emptied: MetaData | None = None
        self.lock_timeout_ms = lock_timeout_ms
        self.statement_timeout_ms = statement_timeout_ms
        self._engine: Engine | None = None
        self._guard: Guard | None = None
        self._scopes: list[Scope] = []
        self._created: list[str] = []
        self.server_version = ""
        self.timings: dict[str, float] = {}
        self.incidents: list[TransactionEndedError] = []
        #: set by :meth:`stop` when the database was changed outside the run
        self.changed: DatabaseChangedError | None = None

    # -- life cycle --------------------------------------------------------
    def __enter__(self) -> IsolatedDatabase:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise NotActiveError("this IsolatedDatabase (it is not started)")
        return self._engine

    @property
    def created_tables(self) -> tuple[str, ...]:
        """The tables the run made (the schema's, from metadata or migrations)."""
        return tuple(self._created)

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    @property
    def current_scope(self) -> Scope:
        if not self._scopes:
            raise NotActiveError("this IsolatedDatabase (it is not started)")
        return self._scopes[-1]

    def start(self) -> None:
        """Connect, begin the run's transaction, create the schema, run fixtures."""
        global _active
        with _active_lock:
            if _active is not None:
                raise RuntimeError("another IsolatedDatabase is already running in this process")
            _active = self
        try:
            started = time.perf_counter()
            # StaticPool: every checkout is the one guarded DB-API connection,
            # so Sessions, Connections and app code all share the transaction.
            with _connect_errors(self.url, self.backend):
                run_url = self.run_url = self.backend.prepare()
                engine = create_engine(run_url, poolclass=_RunPool)
                self.backend.install(engine)
                self._engine = engine
                with engine.connect() as conn:
                    guard = conn.connection.dbapi_connection
                    self._check_safe(conn)
                    self._catalog = self.backend.catalog(conn)
            assert isinstance(guard, Guard)
            self._guard = guard
            self.server_version = self.backend.server_version(guard)
            self.timings["connect"] = time.perf_counter() - started
            event.listen(Engine, "before_cursor_execute", _on_execute)
            self._watching = True
            try:
                self.redirection.point(engine)
            except TypeError as exc:
                raise SetupError("redirecting the app's engines and sessions", str(exc)) from exc
            self._open_run()
        except BaseException:
            self._teardown()
            raise

    def _open_run(self) -> None:
        """Begin the outer transaction and build the run's state inside it."""
        guard = self._require_guard()
        started = time.perf_counter()
        if not self.backend.transactional_ddl:
            # Committed, before the transaction: DDL would commit it anyway.
            with self.engine.connect() as conn:
                self._create_schema(conn, committed=True)
        statements = self.backend.begin_sql() + self.backend.run_setup_sql(
            lock_timeout_ms=self.lock_timeout_ms, statement_timeout_ms=self.statement_timeout_ms
        )
        for sql in statements + self._namespace_sql:
            guard._sqltx_exec(sql)
        guard.sqltx_arm()
        run_scope = Scope(self, 0, None)
        self._scopes = [run_scope]
        self._log = run_scope.queries
        conn = run_scope.connection
        if self.backend.transactional_ddl:
            self._create_schema(conn, committed=False)
        self.timings["schema"] = time.perf_counter() - started
        started = time.perf_counter()
        self._run_fixtures(conn)
        self.timings["fixtures"] = time.perf_counter() - started

    def _run_fixtures(self, conn: Connection) -> None:
        for fixture in self.fixtures:
            try:
                fixture(conn)
                conn.commit()
            except Exception as exc:
                name = getattr(fixture, "__qualname__", repr(fixture))
                raise SetupError(f"fixture {name}", f"{type(exc).__name__}: {first_line(exc)}{_where(exc)}") from exc

    def _check_safe(self, conn: Connection) -> None:
        """The production guard: refuse a database that does not look like one
        for tests (raises :class:`UnsafeDatabaseError`)."""
        label = self.backend.database_label
        if self.trusted or label is None or label in self.allow_databases or is_throwaway(self.url):
            return
        reasons = []
        if self.backend.named_databases and not looks_like_test(label):
            reasons.append(f"its name {label!r} does not look like a test database (no word starts or ends with 'test')")
        known = {t.fullname for m in self.metadata for t in m.tables.values()}
        foreign = sorted(set(self.backend.user_tables(conn)) - known)
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            what = "the configured metadata does not define" if self.metadata else "no metadata defines"
            reasons.append(f"it holds tables {what} ({shown})")
        if reasons:
            raise UnsafeDatabaseError(self.masked_url, label, reasons)

    def _create_schema(self, conn: Connection, *, committed: bool, why: str | None = None) -> None:
        """Create the schema (metadata, or Alembic) on ``conn``; remember which tables were new."""
        if not self.metadata and self.alembic is None:
            return
        step = "creating the schema (" + ("alembic upgrade head" if self.alembic else "metadata") + ")"
        existing = set(inspect(conn).get_table_names())
        wanted = [t.name for m in self.metadata for t in m.sorted_tables]
        clash = [name for name in wanted if name in existing]
        if committed and clash and not self.backend.owns_database:
            # They would be dropped at the end of the run with the ones it made.
            raise SetupError(
                step,
                f"tables {', '.join(clash)} already exist in {self.masked_url}; "
                + (why or f"on {self.backend.display_name} the run creates its tables for real and drops "
                   "them at the end")
                + ", so it does not start on tables it did not make. Drop them (a killed run may have "
                "left them)" + ("" if why else " or let the run make its own database (remove "
                                 "create-database = false)"),
            )
        try:
            for metadata in self.metadata:
                metadata.create_all(conn)
            if self.alembic is not None:
                self._alembic_upgrade(conn)
            conn.commit()
        except SQLAlchemyError as exc:
            reason = first_line(exc)
            if self.backend.is_lock_timeout(exc):
                reason += (
                    " (another connection holds locks on these tables: most likely another test run "
                    "on the same database, whose uncommitted schema blocks this one; give each "
                    "concurrent run its own database)"
                )
            raise SetupError(step, reason) from exc
        made = [name for name in inspect(conn).get_table_names() if name not in existing]
        self._created = list(dict.fromkeys(self._created + made))

    def _alembic_upgrade(self, conn: Connection) -> None:
        """``alembic upgrade head`` on ``conn`` (env.py must use it, as the
        Alembic cookbook's "sharing a connection" recipe does)."""
        path = self.alembic
        assert path is not None
        try:
            from alembic import command
            from alembic.config import Config
        except ImportError as exc:
            raise ConfigError("alembic", path, "Alembic is not installed",
                              "pip install alembic (or nose2-sqltx[alembic])") from exc
        config = Config(path)
        config.attributes["connection"] = conn
        # An env.py that ignores the connection would migrate whatever its own
        # URL names, for real: make it fail instead.
        config.set_main_option("sqlalchemy.url", _NO_ALEMBIC_URL)
        try:
            command.upgrade(config, "head")
        except Exception as exc:
            if any(_NO_ALEMBIC_URL.split(":")[0] in str(e) for e in exception_chain(exc)):
                raise SetupError(
                    "creating the schema (alembic upgrade head)",
                    f"the env.py of {path} opened its own connection instead of using the run's: in "
                    "run_migrations_online(), use config.attributes.get(\"connection\") when it is set "
                    "(Alembic's cookbook: \"Sharing a Connection across one or more programmatic "
                    "migration commands\")",
                ) from exc
            if isinstance(exc, (SQLAlchemyError, SetupError)):
                raise
            raise SetupError("creating the schema (alembic upgrade head)",
                             f"{type(exc).__name__}: {first_line(exc)}{_where(exc)}") from exc

    def _reflect_created(self, conn: Connection) -> MetaData:
        """The tables this run created that exist now, reflected (metadata or migrations alike)."""
        existing = set(inspect(conn).get_table_names())
        reflected = MetaData()
        reflected.reflect(conn, only=[name for name in self._created if name in existing])
        return reflected

    def _drop_created(self, conn: Connection) -> tuple[str, ...]:
        """Drop the tables this run created that still exist (committed ones)."""
        reflected = self._reflect_created(conn)
        if not reflected.tables:
            return ()
        tables = list(reversed(reflected.sorted_tables))
        reflected.drop_all(conn)
        conn.commit()
        return tuple(t.name for t in tables)

    def _empty_created(self, conn: Connection) -> None:
        """Delete every row of the tables this run created (committed ones)."""
        if self._emptied is None:
            # Reflected once per stretch of real commits: it costs more than the deletes.
            self._emptied = self._reflect_created(conn)
        for table in reversed(self._emptied.sorted_tables):
            conn.execute(delete(table))
        conn.commit()

    def stop(self) -> None:
        """Roll back everything the run did and close the connection.

        Raises :class:`TransactionEndedError` (after cleaning up) if code
        ended the run's transaction since the last scope ended, and
        :class:`DatabaseChangedError` if the database's schemas or tables
        are not as the run found them.
        """
        incident = None
        changed = None
        try:
            guard = self._guard
            if guard is not None and guard._sqltx_armed and not guard.sqltx_ended and len(self._scopes) <= 1:
                # Is the run's transaction still there? Catches what the guard
                # could not see (a cursor of another class) at the run's level.
                try:
                    guard._sqltx_exec(f"ROLLBACK TO SAVEPOINT {guard._sqltx_targets[0]}")
                except Exception:  # noqa: BLE001 - the savepoint is gone: so is the transaction
                    guard._sqltx_ended = True
                    guard._sqltx_last = None
            if guard is not None and guard.sqltx_ended:
                incident = self._repair(rebuild=False)
                self.incidents.append(incident)
        finally:
            changed = self.changed = self._teardown(verify=True)
        if incident is not None:
            raise incident
        if changed is not None:
            raise changed

    def _teardown(self, verify: bool = False) -> DatabaseChangedError | None:
        global _active
        changed = None
        try:
            for scope in reversed(self._scopes):
                if self._guard is not None:
                    self._guard._sqltx_quiet = True
                scope._close_handles()
            self._scopes = []
            self._log = None
            self.redirection.restore()
            if self._committed_engine is not None:  # stopped during real commits
                try:
                    with self._committed_engine.connect() as conn:
                        self._drop_created(conn)
                finally:
                    self._committed_engine.dispose()
                    self._committed_engine = None
                    self._committed_depth = None
            guard, self._guard = self._guard, None
            if guard is not None:
                guard.sqltx_disarm()
                try:
                    guard._sqltx_real_rollback()
                    if not self.backend.transactional_ddl and not self.backend.owns_database and self._created:
                        with self.engine.connect() as conn:  # the schema was committed in the DSN's database
                            self._drop_created(conn)
                    if verify and self._catalog is not None:
                        with self.engine.connect() as conn:
                            after = self.backend.catalog(conn)
                        if after != self._catalog:
                            changed = DatabaseChangedError(
                                self.masked_url, tuple(sorted(after - self._catalog)),
                                tuple(sorted(self._catalog - after)))
                finally:
                    guard._sqltx_real_close()
        finally:
            try:
                if self._watching:
                    event.remove(Engine, "before_cursor_execute", _on_execute)
                    self._watching = False
                if self._engine is not None:
                    pool = self._engine.pool
                    if isinstance(pool, _RunPool):
                        pool._sqltx_closing = True
                    self._engine.dispose()
                    self._engine = None
            finally:
                try:
                    self.backend.release()
                finally:
                    with _active_lock:
                        if _active is self:
                            _active = None
        return changed

    # -- what goes through the process's engines ------------------------------
    def _engine_for(self, scope: Scope) -> Engine:
        if scope.real_commits and self._committed_engine is not None:
            return self._committed_engine
        return self.engine

    def _seen(self, engine: Engine, statement: str, context: Any) -> None:
        """Log the scope's SQL; refuse a write through an engine outside the run."""
        run = self._engine
        pool = engine.pool
        if run is not None and pool is run.pool or (
                self._committed_engine is not None and pool is self._committed_engine.pool):
            if self._log is not None:
                self._log.append(statement)
            return
        if run is None or self._committed_engine is not None or is_unwatched(engine):
            return  # real commits: other connections are the point
        if is_write(statement, context):
            leak = LeakError(_short(statement), mask_url(engine.url), names_of(engine))
            self.leaks.append(leak)
            raise leak

    # -- scopes --------------------------------------------------------------
    def begin_scope(self, setup: Callable[[], object] | None = None, *, real_commits: bool = False) -> Scope:
        """Open a nested scope (a savepoint) and return it.

        ``setup``, if given, is called now and called again if the run has to
        be rebuilt after code under test ended its transaction.

        ``real_commits``: the scope's handles (and the app's redirected
        engines) really commit, on connections of their own, and other
        connections see the data, as in production. The run's transaction
        is rolled back first, the schema, the fixtures and the setup of the
        open scopes are made again for real, and when the scope ends the
        tables are dropped and the run's transaction is rebuilt. That costs
        a schema build or two per scope; see the README.
        """
        guard = self._require_guard()
        if real_commits and self._committed_depth is None:
            self._enter_real_commits()
        scope = Scope(self, len(self._scopes), setup)
        if self._committed_depth is not None:
            scope.real_commits = True
        else:
            guard.sqltx_push(scope.savepoint)
        self._scopes.append(scope)
        self._log = scope.queries
        self.redirection.begin_scope()
        if setup is not None:
            try:
                setup()
            except BaseException:
                try:
                    self.end_scope(scope)
                except (TransactionEndedError, LeakError):
                    pass  # the setup's own error is the one to report
                raise
        return scope

    def end_scope(self, scope: Scope) -> None:
        """Undo everything done in ``scope`` (and any scope still open inside it).

        Raises :class:`TransactionEndedError` if code in the scope ended the
        run's transaction (the run is repaired first, so later scopes work),
        and :class:`LeakError` if a write through an engine outside the run
        was refused during the scope and nobody reported it yet.
        """
        if scope not in self._scopes:
            return  # already ended (e.g. by an enclosing scope, or twice)
        guard = self._require_guard()
        guard._sqltx_quiet = True
        try:
            while self._scopes and self._scopes[-1] is not scope:
                self._scopes.pop()._close_handles()
                self.redirection.end_scope()
            scope._close_handles()
            self.redirection.end_scope()
            self._scopes.pop()
            self._log = self._scopes[-1].queries if self._scopes else None
            if scope.real_commits:
                self._end_real_commits_scope(scope)
                ended = False
            elif not guard.sqltx_ended:
                try:
                    guard.sqltx_pop(scope.savepoint)
                    ended = False
                except Exception:  # noqa: BLE001
                    # The savepoint is gone: raw transaction control got past
                    # the guard (e.g. a cursor of another class).
                    guard._sqltx_ended = True
                    guard._sqltx_last = None
                    ended = True
            else:
                ended = True
        finally:
            guard._sqltx_quiet = False
        if not ended:
            return self._raise_leaks(scope)
        incident = self._repair(rebuild=True)
        self.incidents.append(incident)
        raise incident

    def _raise_leaks(self, scope: Scope) -> None:
        for leak in self.leaks[scope._leaks_before:]:
            if not getattr(leak, "reported", False):
                leak.reported = True  # type: ignore[attr-defined]
                raise leak

    @contextmanager
    def scope(self, setup: Callable[[], object] | None = None, *, real_commits: bool = False) -> Iterator[Scope]:
        """``with db.scope() as s:`` — :meth:`begin_scope` / :meth:`end_scope`."""
        scope = self.begin_scope(setup, real_commits=real_commits)
        try:
            yield scope
        finally:
            self.end_scope(scope)

    # -- real commits ------------------------------------------------------------
    def _enter_real_commits(self) -> None:
        """Leave the run's transaction: schema, fixtures and the open scopes'
        setup, made again for real, on an engine of ordinary connections."""
        guard = self._require_guard()
        if self._namespace_sql:
            raise SetupError("real commits", "they cannot be given to parallel workers, which share one "
                             "database: run these tests without -N")
        if not self.backend.supports_real_commits:
            raise SetupError("real commits", f"other connections cannot open {self.masked_url} (it lives in "
                             "the run's connection only): use a file (sqlite:///tests.db) or a server")
        open_scopes = self._scopes[1:]
        guard._sqltx_quiet = True
        self._close_scopes(self._scopes)
        guard.sqltx_disarm()
        guard._sqltx_real_rollback()
        self._scopes = []
        assert self.run_url is not None
        engine = self._committed_engine = create_engine(self.run_url)
        self._emptied = None
        self._committed_depth = len(open_scopes) + 1
        self.redirection.point(engine)
        run_scope = Scope(self, 0, None)
        run_scope.real_commits = True
        self._scopes = [run_scope]
        why = ("for real commits the run creates its tables for real and drops them after the test, "
               "which would take these with them")
        with engine.connect() as conn:
            self._create_schema(conn, committed=True, why=why)
            self._run_fixtures(conn)
        self._replay(open_scopes, real_commits=True)

    def _end_real_commits_scope(self, scope: Scope) -> None:
        """After a scope with real commits: the state the run expects again."""
        engine = self._committed_engine
        assert engine is not None and self._committed_depth is not None
        open_scopes = self._scopes[1:]
        if scope.depth > self._committed_depth:
            # A test inside a class with real commits: empty the tables, then
            # the fixtures and the class's setup again, for the next test.
            self._close_scopes(open_scopes)
            with engine.connect() as conn:
                self._empty_created(conn)
                self._run_fixtures(conn)
            del self._scopes[1:]
            self._replay(open_scopes, real_commits=True)
            return
        self._close_scopes(self._scopes)
        try:
            with engine.connect() as conn:
                self._drop_created(conn)
        finally:
            engine.dispose()
            self._committed_engine = None
            self._committed_depth = None
        self.redirection.point(self.engine)
        self._open_run()
        self._replay(open_scopes, real_commits=False)

    def _close_scopes(self, scopes: list[Scope]) -> None:
        """Close ``scopes``' handles, innermost first, and the app's scoped
        sessions, before the transaction under them goes (they are replayed)."""
        for scope in reversed(scopes):
            scope._close_handles()
        self.redirection.end_all()

    def _replay(self, scopes: list[Scope], *, real_commits: bool) -> None:
        """Reopen ``scopes`` (callers hold these objects), outermost first,
        running their setup again."""
        guard = self._require_guard()
        for scope in scopes:
            scope._reopen(len(self._scopes))
            scope.real_commits = real_commits
            if not real_commits:
                guard.sqltx_push(scope.savepoint)
            self._scopes.append(scope)
            self._log = scope.queries
            self.redirection.begin_scope()
            if scope.setup is not None:
                scope.setup()

    # -- repair ----------------------------------------------------------------
    def _repair(self, *, rebuild: bool) -> TransactionEndedError:
        """Clean up after the run's transaction was ended behind our back.

        The transaction may have been committed (then the schema and data are
        in the database and must go) or rolled back. Rebuild the run and
        replay the setup of the scopes still open, so later tests work.
        """
        guard = self._require_guard()
        statement = guard.sqltx_last_statement
        guard.sqltx_disarm()
        guard._sqltx_real_rollback()
        open_scopes = self._scopes[1:]
        self._close_scopes(self._scopes)
        self._scopes = []
        dropped: tuple[str, ...] = ()
        if self._namespace_sql:
            with self.engine.connect() as conn:
                if self.schema in inspect(conn).get_schema_names():
                    conn.execute(DropSchema(self.schema, cascade=True))
                    conn.commit()
                    dropped = (f"schema {self.schema}",)
        elif self._created:
            # Committed work (raw COMMIT) or, where DDL is not transactional,
            # the schema itself: drop it all, the rebuild makes it afresh.
            with self.engine.connect() as conn:
                dropped = self._drop_created(conn)
        guard._sqltx_real_rollback()
        if self.backend.transactional_ddl:
            committed = bool(dropped)  # the tables were there to drop only if committed
        else:  # the schema is always committed there; assume the worst unless it was a ROLLBACK
            committed = not (statement or "").upper().startswith("ROLLBACK")
        incident = TransactionEndedError(statement, committed=committed, dropped=dropped)
        if rebuild:
            self._open_run()
            self._replay(open_scopes, real_commits=False)
        return incident


    def _require_guard(self) -> Guard:
        if self._guard is None:
            raise NotActiveError("this IsolatedDatabase (it is not started)")
        return self._guard

    def preflight(self) -> str:
        """Connect once, make nothing, and disconnect: the production guard's
        check; return the server's name and version. Raises what :meth:`start`
        would for an unreachable or unsafe database."""
        with _connect_errors(self.url, self.backend):
            engine = create_engine(self.url, poolclass=NullPool)
            try:
                with engine.connect() as conn:
                    self._check_safe(conn)
                    return self.backend.server_version(conn.connection.dbapi_connection)
            finally:
                engine.dispose()

    def explain(self, exc: BaseException) -> str | None:
        """A hint to attach to a test error caused by ``exc`` (timeouts), or None."""
        return self.backend.explain(
            exc, lock_timeout_ms=self.lock_timeout_ms, statement_timeout_ms=self.statement_timeout_ms
        )


@contextmanager
def _connect_errors(url: URL, backend: Backend) -> Iterator[None]:
    """Turn a missing driver or a failed connection into our errors."""
    try:
        yield
    except ImportError as exc:
        package = backend.drivers.get(backend.driver, backend.driver)
        raise ConfigError(
            "dsn", mask_url(url), f"the driver {backend.driver!r} is not installed ({exc})",
            f"pip install {package}, or name another driver in the URL",
        ) from None
    except DBAPIError as exc:
        raise DatabaseUnavailableError(mask_url(url), _scrub(url, exc.orig or exc)) from None


def _scrub(url: URL, exc: BaseException) -> str:
    """The first line of a driver's error, without the password in it."""
    text = first_line(exc)
    secrets = [str(url.password or "")]
    if url.host and "@" in url.host:  # an unencoded @ in the password
        secrets.append(url.host.rsplit("@", 1)[0])
    for secret in filter(None, secrets):
        text = text.replace(secret, "***")
    return text


def _as_metadata(obj: Any) -> MetaData:
    if isinstance(obj, MetaData):
        return obj
    metadata = getattr(obj, "metadata", None)
    if isinstance(metadata, MetaData):
        return metadata
    raise TypeError(f"{obj!r} is neither a MetaData nor has a .metadata (such as a declarative Base)")


def _where(exc: BaseException) -> str:
    """`` (at file:line)`` of the innermost frame that raised ``exc``."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    frame = frames[-1]
    return f" (at {os.path.relpath(frame.filename)}:{frame.lineno})"

