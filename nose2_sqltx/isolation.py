"""The core: one run-long transaction, scopes as savepoints, handles for tests.

Knows nothing about nose2. :class:`IsolatedDatabase` is a context manager; so
is :meth:`IsolatedDatabase.scope`::

    with IsolatedDatabase(url, metadata=[Base.metadata]) as db:
        with db.scope() as scope:            # e.g. a test class
            scope.session.add(User(name="a"))
            scope.session.commit()           # a savepoint, not a commit
            with db.scope() as inner:        # e.g. a test
                ...                          # sees "a"; its own work is undone
    # nothing of the run is left in the database

This module is the facade: the public API, and the wiring of the parts.
:meth:`~IsolatedDatabase.start` connects (:mod:`~nose2_sqltx.connection`),
checks that the database is one for tests and notes its catalog
(:mod:`~nose2_sqltx.safety`), starts the leak watch (:mod:`~nose2_sqltx.leaks`),
redirects the app's engines (:mod:`~nose2_sqltx.redirect`), and hands over to
a :class:`~nose2_sqltx.run.Run`, which begins the run's transaction
(:mod:`~nose2_sqltx.transaction`) and builds the schema and fixtures in it
(:mod:`~nose2_sqltx.schema`). Each :meth:`~IsolatedDatabase.begin_scope`
opens a scope (:mod:`~nose2_sqltx.scopes`); :meth:`~IsolatedDatabase.end_scope`
rolls it back, leaving its savepoint as a spare for the next one. A scope
that asks for real commits switches the run to :mod:`~nose2_sqltx.committed`
until it ends. If code under test ended the run's transaction, the run is
repaired and goes on. :meth:`~IsolatedDatabase.stop` rolls back everything,
checks the catalog, and closes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, MetaData
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from .adoption import Adoption
from .connect_setup import read_setup
from .connection import RunConnection, connect_errors
from .dialects import RUN_NAME_LENGTH, Backend, backend_for, new_run_name
from .environment import ASYNC_TEST_LOOPS, DEFAULT_LOCK_TIMEOUT_MS, DEFAULT_STATEMENT_TIMEOUT_MS, NAMED_DSN_ENV
from .errors import (
    AlreadyRunningError,
    ConfigError,
    ConnectionLostError,
    DatabaseChangedError,
    LeakError,
    NotActiveError,
    SetupError,
    StrayAccessError,
    TransactionEndedError,
    UnsupportedObjectError,
    UntranslatedSchemaError,
)
from .handles import Handles
from .leaks import LeakWatch, names_of
from .messages import PREFIX, mask_url, short_sql
from .queries import queries_note
from .redirect import Redirection
from .run import Run, RunParts
from .runloop import Turns
from .safety import CatalogAudit, check_test_database
from .schema import Fixture, Schema, as_metadata
from .schemacache import SchemaCache
from .scopes import After, Scope, ScopeStack
from .sequences import SequenceReset
from .server import is_throwaway
from .threadwatch import ThreadWatch

__unittest = True

__all__ = ["IsolatedDatabase", "Scope", "active_database", "is_running", "current"]

_active: IsolatedDatabase | None = None
_active_lock = threading.Lock()
#: every started database of the process: the run's, and its other databases (``others``)
_started: list[IsolatedDatabase] = []


#: says why no database runs, for the runner in use (set by its adapter): what -> the error
_explain: Callable[[str], Exception] = NotActiveError


def explain_inactive(explain: Callable[[str], Exception] | None) -> None:
    """Set what :func:`active_database` raises when nothing runs (a runner
    adapter's words for how to start a run); None: :class:`NotActiveError`'s own."""
    global _explain
    _explain = explain or NotActiveError


def active_database(what: str = "nose2-sqltx") -> IsolatedDatabase:
    """The running :class:`IsolatedDatabase`, or :class:`NotActiveError`."""
    if _active is None:
        raise _explain(what)
    return _active


def is_running() -> bool:
    """Whether an :class:`IsolatedDatabase` runs in this process now."""
    return _active is not None


def current() -> Scope:
    """The innermost open scope of the running database: the current test's,
    else its class's, else the run's (as seen by fixture callables).

    Use it where a TestCase attribute cannot reach, e.g. in an app factory::

        app = create_app(engine=nose2_sqltx.current().engine)
    """
    database = active_database("nose2_sqltx.current()")
    scope = database.current_scope
    if scope.depth == 0 and database.outside_tests is not None:
        raise NotActiveError("nose2_sqltx.current() outside a DatabaseTest", runner=database.outside_tests)
    return scope


class IsolatedDatabase:
    """A database whose every change during the run is rolled back at the end.

    ``url``: a SQLAlchemy URL (string or :class:`~sqlalchemy.engine.URL`).
    ``metadata``: MetaData objects (or anything with a ``.metadata``, such as a
    declarative Base) whose tables are created inside the run's transaction.
    ``fixtures``: callables run once, in order, with the run's Connection,
    after the schema exists; what they write is seen by every test.
    ``lock_timeout_ms`` / ``statement_timeout_ms``: server timeouts (0: off).
    ``schema``: the name of the run's own schema (PostgreSQL), made (and
    gone) with the run's transaction. By default every PostgreSQL run gets
    one, named ``sqltx_run_<random>``, first in its ``search_path``, so that
    several runs (CI jobs, parallel workers, a developer's) share one
    database at once without waiting on each other or seeing each other's
    tables; a run whose metadata has tables that name their own schema
    (``billing.ledger``) builds where those names say instead. ``parallel``:
    the run is one of this many parallel workers (``nose2 -N``, ``pytest
    -n``; 0: it is not) and must have a namespace of its own (refused where
    the backend or the metadata cannot give it one); the start checks that
    the server's lock table has room for all of them (PostgreSQL). Backends
    where every run has a database of its own anyway (MySQL, SQLite in
    memory) need no schema.
    ``create_database`` (MySQL/MariaDB): make a database for the run (the
    default); if false, create the tables in the DSN's database and drop them
    at the end.
    ``redirect``: the app's Engines, sessionmakers, scoped_sessions and
    Flask-SQLAlchemy ``db`` objects, by name, pointed at the run for its
    duration (see :mod:`nose2_sqltx.redirect`).
    ``alembic``: an alembic.ini whose ``upgrade head`` makes the schema, on
    the run's connection, instead of ``metadata``; ``models``: MetaData the
    migrated schema must match (its default schema's tables), else the start
    fails with :class:`~nose2_sqltx.errors.MigrationDriftError`.
    ``show_queries``: a test's error gets the SQL its scope sent, as a note
    (:meth:`annotate`). ``flask_session``: ``"test"`` gives a redirected
    Flask-SQLAlchemy ``db`` one Session per test instead of one per app
    context (see :class:`~nose2_sqltx.redirect.Redirection`).
    ``reset_sequences``: every scope (test, class) starts from the sequence
    values its enclosing scope started its first child with, and they are put
    back when it ends, so that ids are the same whatever ran before
    (:meth:`begin_scope` can say otherwise per scope). Not on MySQL/MariaDB.
    ``schemas``: named schemas the app's tables use (``billing``) besides
    those the metadata's tables name, which Alembic's migrations may create
    tables in: on PostgreSQL each run keeps them in schemas of its own
    (:attr:`schema_map`).
    ``allow_databases``: database names the production guard lets through;
    ``trusted``: skip the guard (a server the caller made for the run; a
    :class:`~nose2_sqltx.server.TemporaryPostgres` of this process is trusted anyway).

    ``others``: the run's other databases, by name (``[sqltx:analytics]``),
    each an :class:`IsolatedDatabase` of its own (its URL, schema, fixtures
    and app objects), not started: this one starts and stops them, and each
    of its scopes opens one on each of them, in :attr:`Scope.databases
    <nose2_sqltx.scopes.Scope.databases>`. A Flask-SQLAlchemy ``db`` in
    ``redirect`` has the engines of its binds (``SQLALCHEMY_BINDS``) pointed
    at the database of the bind's name; a bind with none is a
    :class:`~nose2_sqltx.errors.ConfigError`, not a second name for this one.
    When code under test ends one database's transaction, and into and out
    of real commits, all of them are built afresh together, so that a
    class's data is made once in each.

    ``schema_cache`` (PostgreSQL): record the statements that build the
    schema (from ``alembic`` or ``metadata``), and build it by replaying
    them in the next runs while what produced them is unchanged (see
    :mod:`nose2_sqltx.schemacache`); true: in the default cache directory,
    a path: in that directory.

    ``async_test_loop`` (async drivers): ``"run"`` runs each
    ``AsyncDatabaseTest`` as a task on the loop the run's connection lives
    on (see :mod:`nose2_sqltx.testloop`), ``"own"`` on the loop
    ``IsolatedAsyncioTestCase`` makes for it, every driver call crossing to
    the run's loop and back.

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
        lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
        statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
        schema: str | None = None,
        parallel: int = 0,
        create_database: bool = True,
        redirect: Mapping[str, Any] | None = None,
        alembic: str | None = None,
        allow_databases: Sequence[str] = (),
        trusted: bool = False,
        reset_sequences: bool = False,
        schemas: Sequence[str] = (),
        show_queries: bool = False,
        models: Sequence[Any] = (),
        flask_session: str = "app-context",
        others: Mapping[str, IsolatedDatabase] | None = None,
        schema_cache: bool | str | os.PathLike[str] = False,
        async_test_loop: str = ASYNC_TEST_LOOPS[0],
    ) -> None:
        self.url = make_url(url) if isinstance(url, str) else url
        self.backend: Backend = backend_for(self.url, create_database=create_database)
        #: the run's other databases, by name (see ``others``)
        self.others: dict[str, IsolatedDatabase] = dict(others or {})
        #: this database's name among the run's (None: the run's own, ``[sqltx]``)
        self.name: str | None = None
        for name, other in self.others.items():
            other.name = name
        self.reset_sequences = reset_sequences
        if async_test_loop not in ASYNC_TEST_LOOPS:
            raise ConfigError.not_one_of("async-test-loop", async_test_loop, ASYNC_TEST_LOOPS)
        #: where an AsyncDatabaseTest's coroutines run: ``run`` (the run's loop) or ``own``
        self.async_test_loop = async_test_loop
        #: a failed test's error gets the SQL its scope sent as a note (see :meth:`annotate`)
        self.show_queries = show_queries
        self._sequences = SequenceReset(self.backend)
        if reset_sequences:
            self._sequences.check()
        self.redirection: Redirection = Redirection(redirect or {}, flask_session=flask_session,
                                       binds={name: other.redirection for name, other in self.others.items()})
        self.allow_databases = tuple(allow_databases)
        self.trusted = trusted
        self.lock_timeout_ms = lock_timeout_ms
        self.statement_timeout_ms = statement_timeout_ms
        self.run_url: URL | None = None
        self.server_version = ""
        self.timings: dict[str, float] = {}
        self.incidents: list[TransactionEndedError] = []
        #: set by :meth:`stop` when the database was changed outside the run
        self.changed: DatabaseChangedError | None = None
        #: a runner that gives tests outside DatabaseTest classes no scope of
        #: their own ("unittest"): :func:`current` refuses the run's scope there,
        #: whose changes would outlive the test
        self.outside_tests: str | None = None
        cache = None
        if schema_cache is not False and self.backend.caches_schema and (metadata or alembic):
            cache = SchemaCache(None if schema_cache is True else schema_cache)
        tables = Schema(self.backend, self.masked_url, metadata=[as_metadata(m) for m in metadata],
                        alembic=alembic, fixtures=fixtures, models=[as_metadata(m) for m in models], cache=cache)
        if schema is None and (parallel or self.backend.private_runs):
            schema = new_run_name()
        #: the run's own namespace, if it has one
        self.schema = schema
        tables.namespace = schema
        #: the run's own schemas standing in for the named schemas its tables
        #: name (``billing`` -> ``sqltx_run_<random>_billing``), given to every
        #: engine of the run as SQLAlchemy's ``schema_translate_map``
        self.schema_map: dict[str, str] = (
            self.backend.private_schemas(schema, sorted({*tables.named_schemas(), *schemas}))
            if schema is not None else {})
        if schemas and not self.schema_map:
            raise ConfigError("schemas", ", ".join(schemas), f"{self.backend.display_name} keeps no schemas of a "
                              "run's own (only PostgreSQL does)", "Remove the key")
        namespace_sql = (self.backend.private_namespace_sql(schema, list(self.schema_map.values()))
                         if schema is not None else [])
        scopes = ScopeStack(self.redirection)
        handles = Handles(self._is_run_connection, lock=Turns() if self.backend.is_async else None)
        self._adoption = Adoption(handles)

        # the cursor set-up of app dialects kept by redirection (see Backend.cursor_setup)
        cursor_setups: dict[Any, Callable[[Any], None]] = {}

        threads = ThreadWatch()

        def log(conn: Any, cursor: Any, statement: str, context: Any) -> None:
            threads.check()
            innermost = scopes.innermost_if_open()
            if innermost is not None and innermost.stray:
                refused = StrayAccessError(innermost.label, short_sql(statement), mask_url(conn.engine.url),
                                           names_of(conn.engine))
                innermost.stray_error = innermost.stray_error or refused
                raise refused
            if tables.untranslated is not None and self._is_run_connection(conn.engine):
                name = tables.untranslated(statement)
                if name is not None:
                    raise UntranslatedSchemaError(name, self.schema_map, short_sql(statement))
            scopes.log(statement)
            handles.saw(conn, statement, context)
            if cursor_setups:
                setup = cursor_setups.get(conn.dialect)
                if setup is not None:
                    setup(cursor)

        def own_dialect(dialect: Any) -> None:
            handles.install(dialect)
            setup = self.backend.cursor_setup(dialect)
            if setup is not None:
                cursor_setups[dialect] = setup

        self.redirection.on_own_dialect = own_dialect
        self._threads = threads
        self._parts = RunParts(
            database=self, backend=self.backend, schema=tables, scopes=scopes, redirection=self.redirection,
            watch=LeakWatch(is_run_engine=self._is_run_engine, log=log, elsewhere=self._elsewhere), handles=handles,
            audit=CatalogAudit(self.backend, self.masked_url), namespace=schema, namespace_sql=namespace_sql,
            parallel=parallel)
        self._run: Run | None = None
        self._lost: ConnectionLostError | None = None
        #: a test's result carries the refusal that follows a raw COMMIT: its scope's end need not raise it again
        self._ending_reported = False
        #: how many times the run was built afresh because rolled-back rows had grown its tables
        self.refreshes = 0
        #: what runs that were killed had left committed, dropped at the start
        self.reaped: list[str] = []
        #: the locks the run's transaction holds for its schema, from the start to
        #: the end (PostgreSQL; None elsewhere): see the server's max_locks_per_transaction
        self.locks: int | None = None
        #: the scopes that were open, closed by a repair or the end of real
        #: commits and not made again yet (see :meth:`_rebuild_together`)
        self._pending: list[Scope] | None = None

    # -- what the parts know, for callers --------------------------------------
    @property
    def engine(self) -> Engine:
        """The run's engine: every connection it hands out is the run's transaction."""
        return self._started().connection.engine

    @property
    def metadata(self) -> list[MetaData]:
        return self._parts.schema.metadata

    @property
    def fixtures(self) -> list[Fixture]:
        return self._parts.schema.fixtures

    @property
    def alembic(self) -> str | None:
        return self._parts.schema.alembic

    @property
    def created_tables(self) -> tuple[str, ...]:
        """The tables the run made (the schema's, from metadata or migrations)."""
        return self._parts.schema.created

    @property
    def leaks(self) -> list[LeakError]:
        """Every write through an engine outside the run that was refused."""
        return self._parts.watch.leaks

    @property
    def lost(self) -> ConnectionLostError | None:
        """Why the run's connection was lost, if it was; nothing can be repaired then."""
        return self._run.lost if self._run is not None else self._lost

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    @property
    def current_scope(self) -> Scope:
        return self._parts.scopes.innermost

    # -- life cycle --------------------------------------------------------
    def __enter__(self) -> IsolatedDatabase:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Connect, begin the run's transaction, create the schema, run fixtures."""
        if self.backend.is_async:
            # SQLAlchemy's set-up of a new connection and of the app's dialects
            # awaits the driver directly: all of it on the run's loop.
            loop = self.backend.loop
            # another thread waits for the connection while a test blocks the loop: as long as for a lock
            loop.blocked_limit = self.lock_timeout_ms / 1000 if self.lock_timeout_ms else None
            loop.call(self._start)
        else:
            self._start()

    def _start(self) -> None:
        global _active
        with _active_lock:
            if self.name is None:
                if _active is not None:
                    raise AlreadyRunningError(_active.masked_url)
                _active = self
            _started.append(self)
        connection = None
        try:
            started = time.perf_counter()
            with connect_errors(self.url, self._dsn_setting):
                self.run_url = self.backend.prepare()
                setup = read_setup(self.redirection.named_engines(), self.run_url, self.backend.own_connect_args)
                self.redirection.carry(setup)
                connection = RunConnection(self.run_url, self.backend, self.masked_url, setup=setup)
                if self.schema_map:
                    connection.engine.update_execution_options(schema_translate_map=self.schema_map)
                with connection.engine.connect() as conn:
                    self._check_safe(conn)
                    self.reaped = self.backend.reap(conn)
                    self._parts.audit.take(conn)
            self.server_version = self.backend.server_version(connection.dbapi)
            self.timings["connect"] = time.perf_counter() - started
            self._parts.watch.start()
            self._parts.handles.install(connection.engine.dialect)
            self._parts.handles.start()
            self._adoption.start(list(dict.fromkeys([self.url, self.run_url])), connection.engine.dialect,
                                 self._adoptable_connection, self.schema_map)
            try:
                self.redirection.point(connection.engine)
            except UnsupportedObjectError as exc:
                raise SetupError("redirecting the app's engines and sessions", str(exc)) from exc
            self._run = Run(self._parts, connection, self.run_url, setup=setup, lock_timeout_ms=self.lock_timeout_ms,
                            statement_timeout_ms=self.statement_timeout_ms)
            self._run.open(first=True)
            self.timings.update(self._run.timings)
            self.locks = self._run.locks
            self._start_others()
        except BaseException:
            self._teardown(connection, verify=False)
            raise

    def _start_others(self) -> None:
        started = []
        try:
            for other in self.others.values():
                other.start()
                started.append(other)
        except BaseException:
            for other in reversed(started):
                with suppress(Exception):  # the start's error is the one to report
                    other._teardown(None, verify=False)
            raise

    def preflight(self) -> str:
        """Connect once, make nothing, and disconnect: the production guard's
        check; return the server's name and version. Raises what :meth:`start`
        would for an unreachable or unsafe database.

        With an async driver, the loop the check ran on stays up, idle, until
        :meth:`close_preflight`: a parallel run forks its workers next, and a
        thread that has only just ended may still be in OpenSSL's clean-up of
        its thread state (after ``join`` returns), holding a lock that a
        worker forked then inherits held, and waits on forever in its first
        TLS handshake."""
        with connect_errors(self.url, self._dsn_setting):
            engine = self.backend.create_engine(self.url, side=True, poolclass=NullPool)
            try:
                with engine.connect() as conn:
                    self._check_safe(conn)
                    self.server_version = self.backend.server_version(conn.connection.dbapi_connection)
            finally:
                engine.dispose()
        for other in self.others.values():
            other.preflight()
        return self.server_version

    def close_preflight(self) -> None:
        """End what :meth:`preflight` left up (once the workers have started)."""
        for other in self.others.values():
            other.close_preflight()
        self.backend.close_loop()

    def stop(self) -> None:
        """Roll back everything the run did and close the connection.

        Raises :class:`TransactionEndedError` (after cleaning up) if code
        ended the run's transaction since the last scope ended,
        :class:`ConnectionLostError` if the connection was lost, and
        :class:`DatabaseChangedError` if the database's schemas or tables
        are not as the run found them.
        """
        problems: list[Exception] = []
        for other in reversed(self.others.values()):
            try:
                other.stop()
            except Exception as exc:  # noqa: BLE001 - reported with this database's own, below
                problems.append(exc)
        run = self._run
        incident = None
        try:
            if run is not None and run.mode is run.transaction and run.lost is None:
                if len(self._parts.scopes) <= 1:
                    run.transaction.check_intact()
                if run.transaction.ended:
                    incident = run.repair(rebuild=False)
                    self.incidents.append(incident)
        finally:
            self.changed = self._teardown(None, verify=True)
        own = self.lost or incident or self.changed
        if own is not None:
            problems.insert(0, own)
        if problems:
            for problem in problems[1:]:
                problems[0].add_note(f"{PREFIX}: also: {problem}")
            raise problems[0]

    def _check_safe(self, conn: Connection) -> None:
        if not self.trusted and not is_throwaway(self.url):
            check_test_database(conn, self.backend, self.metadata, allow=self.allow_databases,
                                masked_url=self.masked_url)

    def _teardown(self, connection: RunConnection | None, *, verify: bool) -> DatabaseChangedError | None:
        """Close everything :meth:`start` opened (``connection``: if it got no
        further than connecting), whatever state it is in; ``verify``: compare
        the catalog with the run's start."""
        global _active
        run, self._run = self._run, None
        try:
            self._parts.watch.stop()  # no test runs from here on; the run's own clean-up is not a leak
            self._parts.handles.stop()
            self._adoption.stop()
            if run is not None:
                self._lost = run.lost
                return run.close(verify=verify)
            self.redirection.restore()
            if connection is not None:
                connection.close()
            return None
        finally:
            try:
                try:
                    self.backend.release()
                finally:
                    self.backend.close_loop()
            finally:
                with _active_lock:
                    if _active is self:
                        _active = None
                    if self in _started:
                        _started.remove(self)

    # -- scopes --------------------------------------------------------------
    def begin_scope(self, setup: Callable[[], object] | None = None, *, real_commits: bool = False,
                    reset_sequences: bool | None = None, label: str | None = None, stray: bool = False) -> Scope:
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

        ``reset_sequences``: this scope's sequences are put back when it ends
        (None: as the database was made, see ``reset_sequences`` there).

        ``label``: what the scope is, for messages (the test's id).
        ``stray``: the scope's test may not use the database
        (``only-database-tests``): every statement in the scope is refused
        with :class:`~nose2_sqltx.errors.StrayAccessError`, and the scope's
        end raises it if the test's result does not carry it already.
        """
        run = self._started()
        if run.lost is not None:
            raise run.lost
        if real_commits and not run.mode.real_commits:
            if self.others:
                self._enter_committed_together()
            else:
                run.enter_committed()
        mode = run.mode
        scope = Scope(self, len(self._parts.scopes), setup, mode.engine, real_commits=mode.real_commits)
        scope.leak_mark = self._parts.watch.mark()
        scope.stray = stray
        if label is not None:
            scope.label = label
        scope.threads_before = self._threads.mark()
        if (self.reset_sequences if reset_sequences is None else reset_sequences) and not mode.real_commits:
            scopes = self._parts.scopes
            self._sequences.begin(scope, scopes.innermost, scopes.outermost.connection,
                                  run.connection.dbapi.sqltx_execute)
        self._parts.handles.reset()
        mode.enter_scope(scope)
        self._parts.scopes.push(scope)
        try:
            for name, other in self.others.items():
                scope.databases[name] = other.begin_scope(reset_sequences=reset_sequences, label=label, stray=stray)
        except BaseException:
            with suppress(Exception):  # the other database's error is the one to report
                self.end_scope(scope)
            raise
        if setup is not None:
            try:
                setup()
            except BaseException:
                try:
                    self.end_scope(scope)
                except (TransactionEndedError, LeakError):
                    pass  # the setup's own error is the one to report
                raise
        scope.after_setup = len(scope.queries)
        for inner in scope.databases.values():
            inner.after_setup = len(inner.queries)
        return scope

    def end_scope(self, scope: Scope) -> None:
        """Undo everything done in ``scope`` (and any scope still open inside it).

        Raises :class:`TransactionEndedError` if code in the scope ended the
        run's transaction (the run is repaired first, so later scopes work),
        :class:`ConnectionLostError` if the connection was lost, and
        :class:`LeakError` if a write through an engine outside the run was
        refused during the scope and nobody reported it yet.
        """
        if not self.others:
            self._end_scope(scope, rebuild=True)
            return
        problems: list[BaseException] = []
        for name, other in reversed(self.others.items()):
            inner = scope.databases.get(name)
            if inner is not None:
                try:
                    other._end_scope(inner, rebuild=False)
                except Exception as exc:  # noqa: BLE001 - raised below, once every database's scope ended
                    exc.add_note(f"{PREFIX}: in [sqltx:{name}]'s database, {other.masked_url}")
                    problems.append(exc)
        try:
            self._end_scope(scope, rebuild=False)
        except Exception as exc:  # noqa: BLE001 - as above
            problems.insert(0, exc)
        if any(database._pending is not None for database in (self, *self.others.values())):
            self._rebuild_together()
        if problems:
            raise problems[0]

    # A run with several databases: a class's set-up writes to all of them,
    # so wherever the open scopes are made again (after a raw COMMIT, into
    # and out of real commits), they are made again in all of them together.
    def _enter_committed_together(self) -> None:
        """Real commits in every database, the open scopes made again in them together."""
        databases = [self, *self.others.values()]
        for database in databases:
            database._started().check_real_commits()  # before any leaves its transaction
        self._replay_together(databases, {id(d): d._started().enter_committed(replay=False) for d in databases})

    def _rebuild_together(self) -> None:
        """Every database of the run built afresh, after code under test
        ended one's transaction or real commits ended: those that did not
        (their :attr:`_pending` is None) too, and the open scopes made again
        in all of them together."""
        if self.lost is not None:
            return  # every later scope reports the loss: nothing to build the classes' set-up on
        # (another whose connection was lost has nothing to rebuild: its scopes report the loss)
        databases = [database for database in (self, *self.others.values()) if database.lost is None]
        inners: dict[int, list[Scope]] = {}
        for database in databases:
            if database._pending is None:
                run = database._started()
                database._pending = list(database._parts.scopes.inner)
                run.repair(rebuild=False)  # its transaction is intact: rolled back, its schema dropped
                run.open_afresh()
            inners[id(database)], database._pending = database._pending, None
        self._replay_together(databases, inners)

    def _replay_together(self, databases: list[IsolatedDatabase], inners: dict[int, list[Scope]]) -> None:
        """Reopen each database's closed scopes (``inners``, by ``id``) level
        by level, in its run's current mode, and run each level's setup (the
        scope of this database holds it) once, when its scope is open in every database."""
        for level, scope in enumerate(inners[id(self)]):
            for database in databases:
                database._parts.scopes.reopen(inners[id(database)][level], database._started().mode)
            if scope.setup is not None:
                scope.setup()
            for database in databases:
                inner = inners[id(database)][level]
                inner.after_setup = len(inner.queries)

    def _end_scope(self, scope: Scope, *, rebuild: bool) -> None:
        """:meth:`end_scope` for this database alone; ``rebuild`` false: a
        repair or the end of real commits leaves the run's transaction open
        and empty, its open scopes in :attr:`_pending`, for :meth:`_rebuild_together`."""
        scopes = self._parts.scopes
        if scope not in scopes:
            return  # already ended (e.g. by an enclosing scope, or twice)
        run = self._started()
        if run.lost is not None:
            # Nothing to roll back: the server did when the connection dropped.
            scopes.pop_through(scope)
            if run.lost.reported:
                return
            raise run.lost
        mode = run.mode
        self._threads.scope_ended(scope.threads_before, scope.label)
        self._parts.handles.reset()  # the scope's rollback undoes all its handles' work
        with mode.quiet():
            scopes.pop_through(scope)
            after = mode.leave_scope(scope, scopes)
        if after is After.RETURN:
            if rebuild:
                run.return_to_transaction()
            else:
                self._pending = run.return_to_transaction(replay=False)
        elif after is After.REPAIR:
            pending = None if rebuild else list(scopes.inner)
            incident = run.repair(rebuild=rebuild)
            if pending is not None:
                run.open_afresh()
                self._pending = pending
            self.incidents.append(incident)
            reported, self._ending_reported = self._ending_reported, False
            if not reported:  # else the test's result has it, as the refusal of a later statement
                raise incident
        if self._pending is None:
            self._sequences.end(scope, run.connection.dbapi.sqltx_execute)
        leak = self._parts.watch.unreported_since(scope.leak_mark)
        if leak is not None:
            raise leak
        stray = scope.stray_error
        if stray is not None and not stray.reported:
            stray.reported = True  # (the test swallowed it)
            raise stray
        if self._pending is not None:
            return  # its scopes are made again by _rebuild_together
        if not self._grouped and run.refresh_if_grown():  # (the group's setups write to every database)
            self.refreshes += 1

    @contextmanager
    def scope(self, setup: Callable[[], object] | None = None, *, real_commits: bool = False,
              reset_sequences: bool | None = None) -> Iterator[Scope]:
        """``with db.scope() as s:`` — :meth:`begin_scope` / :meth:`end_scope`."""
        scope = self.begin_scope(setup, real_commits=real_commits, reset_sequences=reset_sequences)
        try:
            yield scope
        finally:
            self.end_scope(scope)

    # -- what the runner adapters ask --------------------------------------------
    def annotate(self, exc: BaseException, scope: Scope | None = None) -> None:
        """A test failed with ``exc``: add a hint where one helps (timeouts, a
        lost connection), and note its leaks and the loss of the connection as
        reported, so the test's end does not raise them again. Once per
        exception: ``DatabaseTest`` annotates a test's error as it happens
        (with the test's ``scope``, whose SQL ``show_queries`` adds), and the
        runner again as it reports it."""
        if getattr(exc, "_sqltx_annotated", False):
            return
        with suppress(AttributeError):  # (an exception class with __slots__)
            exc._sqltx_annotated = True  # type: ignore[attr-defined]
        for name, other in self.others.items():
            other._annotate(exc, scope.databases.get(name) if scope is not None else None)
        self._annotate(exc, scope)

    def _annotate(self, exc: BaseException, scope: Scope | None) -> None:
        self._parts.watch.note_reported(exc)
        if self.show_queries and scope is not None:
            exc.add_note(queries_note(scope.queries))
        if isinstance(exc, TransactionEndedError) and exc.refused:
            self._ending_reported = True
        lost = self._run.transaction.found_lost(exc) if self._run is not None else None
        if lost is not None and not lost.reported:
            lost.reported = True
            if exc is not lost:
                exc.add_note(f"{PREFIX}: {lost}")
            return
        note = self.backend.explain(
            exc, lock_timeout_ms=self.lock_timeout_ms, statement_timeout_ms=self.statement_timeout_ms
        )
        if note and note not in getattr(exc, "__notes__", ()):
            exc.add_note(note)

    def summary(self, server: str | None = None, *, ran: bool = True) -> str:
        """The last line of a runner's report: which database, and how the run went.

        ``server`` describes the throwaway server, if one was used; ``ran``
        false: the tests ran in parallel workers, each with a run of its own.
        """
        where = f" ({server})" if server is not None else ""
        version = self.server_version or self.backend.display_name
        if self.name is not None:
            version = f"[sqltx:{self.name}] {version}"
        if not ran:
            details = f"parallel workers, each in {self.backend.worker_namespace}; {self.backend.cleanup_note}"
        else:
            t = self.timings
            cache = self._parts.schema.cache
            how = {"replayed": " (replayed from the schema cache)", "recorded": " (recorded in the schema cache)"}.get(
                cache.state or "", "") if cache is not None else ""
            details = (f"connect {t.get('connect', 0):.3f}s, schema ({self._parts.schema.table_count} tables) "
                       f"{t.get('schema', 0):.3f}s{how}, fixtures {t.get('fixtures', 0):.3f}s; ")
            if self.lost is not None:
                details += "the connection was lost, see the error above; the server rolled back the run's work"
            elif self.incidents:
                details += (f"code under test ended the run's transaction {len(self.incidents)} time(s), "
                            "see the errors above")
            else:
                details += self.backend.cleanup_note
            if self.refreshes:
                details += (f"; built afresh {self.refreshes} time(s) between tests, as rolled-back rows "
                            "had grown its tables")
            if self.reaped:
                runs = len({name[:RUN_NAME_LENGTH] for name in self.reaped})
                details += f"; dropped what {runs} killed run(s) had left: {', '.join(self.reaped)}"
            if self.changed is not None:
                details += "; the database was changed outside the run, see the error above"
            if self.redirection.set_aside:
                details += f"; set aside from the app's engines: {'; '.join(self.redirection.set_aside)}"
            if cache is not None and cache.note:
                details += f"; {cache.note}"
        lines = [f"{PREFIX}: {version}{where} at {self.masked_url}; {details}"]
        lines.extend(other.summary(ran=ran) for other in self.others.values())
        return "\n".join(lines)

    @property
    def _dsn_setting(self) -> str | None:
        """Where this database's URL is set, for a connection error's fix (None: ``[sqltx]``'s dsn)."""
        if self.name is None:
            return None
        return f"[sqltx:{self.name}] dsn (or {NAMED_DSN_ENV.format(self.name.upper())})"

    @property
    def _grouped(self) -> bool:
        """Whether this database is one of several in the run."""
        return bool(self.others) or self.name is not None

    def _elsewhere(self, engine: Engine) -> bool:
        """Whether ``engine`` is one of another started database's (the run's others)."""
        return any(database is not self and database._is_run_engine(engine) for database in list(_started))

    def _is_run_engine(self, engine: Engine) -> bool:
        run = self._run
        return run is not None and (run.owns(engine) or self._adoption.adopted(engine))

    def _is_run_connection(self, engine: Engine) -> bool:
        """Whether ``engine`` hands out the run's one connection (not real commits' own)."""
        run = self._run
        return run is not None and (run.connection.owns(engine) or self._adoption.adopted(engine))

    def _adoptable_connection(self) -> Any:
        """The run's connection, for an engine the app makes on the run's database (not during real commits)."""
        run = self._run
        if run is None or run.mode is not run.transaction:
            return None
        return run.connection.dbapi

    def _started(self) -> Run:
        if self._run is None:
            raise NotActiveError("this IsolatedDatabase (it is not started)")
        return self._run
