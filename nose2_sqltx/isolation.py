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
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, create_engine, inspect
from sqlalchemy.schema import DropSchema
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool, StaticPool

from .config import mask_url
from .dialects import Backend, backend_for
from .dialects.base import first_line
from .errors import ConfigError, DatabaseUnavailableError, NotActiveError, SetupError, TransactionEndedError
from .guard import Guard

__unittest = True

__all__ = ["IsolatedDatabase", "Scope", "active_database", "current", "probe"]

Fixture = Callable[[Connection], object]

_active: IsolatedDatabase | None = None
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

    @property
    def engine(self) -> Engine:
        return self.database.engine

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            self._check_open()
            self._connection = self.database.engine.connect()
        return self._connection

    @property
    def session(self) -> Session:
        if self._session is None:
            self._check_open()
            self._session = Session(bind=self.database.engine)
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
        self.lock_timeout_ms = lock_timeout_ms
        self.statement_timeout_ms = statement_timeout_ms
        self._engine: Engine | None = None
        self._guard: Guard | None = None
        self._scopes: list[Scope] = []
        self._created: list[str] = []
        self.server_version = ""
        self.timings: dict[str, float] = {}
        self.incidents: list[TransactionEndedError] = []

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
                run_url = self.backend.prepare()
                engine = create_engine(run_url, poolclass=StaticPool)
                self.backend.install(engine)
                self._engine = engine
                with engine.connect() as conn:
                    guard = conn.connection.dbapi_connection
            assert isinstance(guard, Guard)
            self._guard = guard
            self.server_version = self.backend.server_version(guard)
            self.timings["connect"] = time.perf_counter() - started
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
        conn = run_scope.connection
        if self.backend.transactional_ddl:
            self._create_schema(conn, committed=False)
        self.timings["schema"] = time.perf_counter() - started
        started = time.perf_counter()
        for fixture in self.fixtures:
            try:
                fixture(conn)
                conn.commit()
            except Exception as exc:
                name = getattr(fixture, "__qualname__", repr(fixture))
                raise SetupError(f"fixture {name}", f"{type(exc).__name__}: {first_line(exc)}{_where(exc)}") from exc
        self.timings["fixtures"] = time.perf_counter() - started

    def _create_schema(self, conn: Connection, *, committed: bool) -> None:
        """Create the metadata's tables on ``conn``; remember which were new."""
        if not self.metadata:
            return
        existing = set(inspect(conn).get_table_names())
        wanted = [t.name for m in self.metadata for t in m.sorted_tables]
        clash = [name for name in wanted if name in existing]
        if committed and clash and not self.backend.owns_database:
            # They would be dropped at the end of the run with the ones it made.
            raise SetupError(
                "creating the schema (metadata)",
                f"tables {', '.join(clash)} already exist in {self.masked_url}; on "
                f"{self.backend.display_name} the run creates its tables for real and drops them at the "
                "end, so it does not start on tables it did not make. Drop them (a killed run may have "
                "left them) or let the run make its own database (remove create-database = false)",
            )
        try:
            for metadata in self.metadata:
                metadata.create_all(conn)
            conn.commit()
        except SQLAlchemyError as exc:
            reason = first_line(exc)
            if self.backend.is_lock_timeout(exc):
                reason += (
                    " (another connection holds locks on these tables: most likely another test run "
                    "on the same database, whose uncommitted schema blocks this one; give each "
                    "concurrent run its own database)"
                )
            raise SetupError("creating the schema (metadata)", reason) from exc
        self._created = [name for name in wanted if name not in existing]

    def _drop_created(self, conn: Connection) -> tuple[str, ...]:
        """Drop the tables this run created that still exist (committed ones)."""
        left = set(inspect(conn).get_table_names()) & set(self._created)
        tables = [t for m in self.metadata for t in reversed(m.sorted_tables) if t.name in left]
        for table in tables:
            table.drop(conn)
        conn.commit()
        return tuple(t.name for t in tables)

    def stop(self) -> None:
        """Roll back everything the run did and close the connection.

        Raises :class:`TransactionEndedError` (after cleaning up) if code
        ended the run's transaction since the last scope ended.
        """
        incident = None
        try:
            guard = self._guard
            if guard is not None and not guard.sqltx_ended and len(self._scopes) <= 1:
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
            self._teardown()
        if incident is not None:
            raise incident

    def _teardown(self) -> None:
        global _active
        try:
            for scope in reversed(self._scopes):
                if self._guard is not None:
                    self._guard._sqltx_quiet = True
                scope._close_handles()
            self._scopes = []
            guard, self._guard = self._guard, None
            if guard is not None:
                guard.sqltx_disarm()
                try:
                    guard._sqltx_real_rollback()
                    if not self.backend.transactional_ddl and not self.backend.owns_database and self._created:
                        with self.engine.connect() as conn:  # the schema was committed in the DSN's database
                            self._drop_created(conn)
                finally:
                    guard._sqltx_real_close()
        finally:
            try:
                if self._engine is not None:
                    self._engine.dispose()
                    self._engine = None
            finally:
                try:
                    self.backend.release()
                finally:
                    with _active_lock:
                        if _active is self:
                            _active = None

    # -- scopes --------------------------------------------------------------
    def begin_scope(self, setup: Callable[[], object] | None = None) -> Scope:
        """Open a nested scope (a savepoint) and return it.

        ``setup``, if given, is called now and called again if the run has to
        be rebuilt after code under test ended its transaction.
        """
        guard = self._require_guard()
        scope = Scope(self, len(self._scopes), setup)
        guard.sqltx_push(scope.savepoint)
        self._scopes.append(scope)
        if setup is not None:
            try:
                setup()
            except BaseException:
                try:
                    self.end_scope(scope)
                except TransactionEndedError:
                    pass  # the setup's own error is the one to report
                raise
        return scope

    def end_scope(self, scope: Scope) -> None:
        """Undo everything done in ``scope`` (and any scope still open inside it).

        Raises :class:`TransactionEndedError` if code in the scope ended the
        run's transaction; the run is repaired first, so later scopes work.
        """
        if scope not in self._scopes:
            return  # already ended (e.g. by an enclosing scope, or twice)
        guard = self._require_guard()
        guard._sqltx_quiet = True
        try:
            while self._scopes and self._scopes[-1] is not scope:
                self._scopes.pop()._close_handles()
            scope._close_handles()
            self._scopes.pop()
            if not guard.sqltx_ended:
                try:
                    guard.sqltx_pop(scope.savepoint)
                    return
                except Exception:  # noqa: BLE001
                    # The savepoint is gone: raw transaction control got past
                    # the guard (e.g. a cursor of another class).
                    guard._sqltx_ended = True
                    guard._sqltx_last = None
        finally:
            guard._sqltx_quiet = False
        incident = self._repair(rebuild=True)
        self.incidents.append(incident)
        raise incident

    @contextmanager
    def scope(self, setup: Callable[[], object] | None = None) -> Iterator[Scope]:
        """``with db.scope() as s:`` — :meth:`begin_scope` / :meth:`end_scope`."""
        scope = self.begin_scope(setup)
        try:
            yield scope
        finally:
            self.end_scope(scope)

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
        for scope in reversed(self._scopes):
            scope._close_handles()
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
            # Callers hold the Scope objects: reopen the same ones, outermost first.
            for scope in open_scopes:
                scope.depth = len(self._scopes)
                scope.savepoint = f"sqltx_{scope.depth}"
                scope.closed = False
                guard.sqltx_push(scope.savepoint)
                self._scopes.append(scope)
                if scope.setup is not None:
                    scope.setup()
        return incident

    def _require_guard(self) -> Guard:
        if self._guard is None:
            raise NotActiveError("this IsolatedDatabase (it is not started)")
        return self._guard

    def explain(self, exc: BaseException) -> str | None:
        """A hint to attach to a test error caused by ``exc`` (timeouts), or None."""
        return self.backend.explain(
            exc, lock_timeout_ms=self.lock_timeout_ms, statement_timeout_ms=self.statement_timeout_ms
        )

def probe(url: str | URL) -> str:
    """Connect once and disconnect; return the server's name and version.

    Raises :class:`DatabaseUnavailableError` (or :class:`ConfigError` for a
    missing driver) as :meth:`IsolatedDatabase.start` would.
    """
    url = make_url(url) if isinstance(url, str) else url
    backend = backend_for(url)
    with _connect_errors(url, backend):
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return backend.server_version(conn.connection.dbapi_connection)
        finally:
            engine.dispose()


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

