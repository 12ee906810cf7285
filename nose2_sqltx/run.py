"""A started run: its connection, the mode its scopes are isolated in, and the moves between them.

:class:`Run` is what :meth:`IsolatedDatabase.start <nose2_sqltx.isolation.IsolatedDatabase.start>`
makes once it is connected. It opens the run's transaction and builds the
schema and fixtures in it, switches to real commits and back, repairs the
run after code under test ended its transaction, and closes it all at the
end. Which mode the scopes are in is :attr:`Run.mode`: the run's
:class:`~nose2_sqltx.transaction.RunTransaction`, or a
:class:`~nose2_sqltx.committed.CommittedMode` while a scope with real
commits is open.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from .committed import CommittedMode
from .connect_setup import ConnectSetup
from .connection import RunConnection
from .dialects import Backend
from .errors import ConnectionLostError, DatabaseChangedError, SetupError, TransactionEndedError
from .handles import Handles
from .leaks import LeakWatch
from .lockwait import lock_guard
from .redirect import Redirection
from .refresh import Refresh
from .safety import CatalogAudit
from .schema import Schema
from .scopes import Mode, Scope, ScopeOwner, ScopeStack
from .transaction import RunTransaction

__unittest = True

__all__ = ["Run", "RunParts"]


@dataclass(frozen=True)
class RunParts:
    """What a run is made of; the :class:`~nose2_sqltx.isolation.IsolatedDatabase` makes them."""

    #: what the run's scopes are ended through
    database: ScopeOwner
    backend: Backend
    schema: Schema
    scopes: ScopeStack
    redirection: Redirection
    watch: LeakWatch
    handles: Handles
    audit: CatalogAudit
    #: the run's own namespace (PostgreSQL: its schema), or None
    namespace: str | None
    namespace_sql: list[str]
    #: how many parallel workers share the database, this run one of them (0: it is not a worker)
    parallel: int = 0


class Run:
    """The run on ``connection`` (made by :meth:`start`), from its first build to :meth:`close`."""

    def __init__(self, parts: RunParts, connection: RunConnection, run_url: URL, *, setup: ConnectSetup,
                 lock_timeout_ms: int, statement_timeout_ms: int) -> None:
        self.parts = parts
        self.connection = connection
        self.run_url = run_url
        #: how the app's engines set up their connections: real-commit connections are made so too
        self.setup = setup
        self.transaction = RunTransaction(connection, parts.backend, namespace_sql=parts.namespace_sql,
                                          lock_timeout_ms=lock_timeout_ms, statement_timeout_ms=statement_timeout_ms)
        self.mode: Mode = self.transaction
        self.timings: dict[str, float] = {}
        #: keeps other connections' waits on the run's locks within lock-timeout
        self.guard = lock_guard(parts.backend, run_url, connection.masked_url, lock_timeout_ms)
        #: builds the run afresh when rolled-back rows have grown its tables (PostgreSQL)
        self.refresher: Refresh | None = None
        #: the locks the run's transaction held once its schema was built (None: not counted)
        self.locks: int | None = None

    @property
    def lost(self) -> ConnectionLostError | None:
        """Why the connection was lost, once it was; nothing can be repaired then."""
        return self.transaction.lost

    def owns(self, engine: Engine) -> bool:
        """Whether ``engine`` is one of the run's (its connection's, or the current mode's)."""
        return self.connection.owns(engine) or self.mode.owns(engine)

    def open(self, *, first: bool = False) -> None:
        """Begin the run's transaction and build the run's state inside it."""
        parts, transaction = self.parts, self.transaction
        started = time.perf_counter()
        if not parts.backend.transactional_ddl:
            # Committed, before the transaction: DDL would commit it anyway.
            with transaction.engine.connect() as conn:
                parts.schema.create(conn, committed=True)
        transaction.begin()
        run_scope = Scope(parts.database, 0, None, transaction.engine)
        parts.scopes.push(run_scope)
        conn = run_scope.connection
        if parts.backend.transactional_ddl:
            parts.schema.create(conn, committed=False)
        schema_done = time.perf_counter()
        try:
            parts.schema.run_fixtures(
                conn, ended=lambda: (transaction.last_statement or "a statement") if transaction.ended else None)
        except SetupError:
            if transaction.ended:
                self.repair(rebuild=False)  # drop what the fixture's COMMIT committed
            raise
        if first:
            self.locks = parts.backend.check_lock_room(conn, max(parts.parallel, 1))
        transaction.connection.dbapi.sqltx_check_commits(parts.backend.commit_check(conn))
        # where reset-sequences puts sequences back to after each top-level scope
        run_scope.sequences = parts.backend.sequence_values(conn, run_only=True)
        if first and self.guard is not None:
            self.guard.start(transaction.connection.dbapi)
        if first and parts.backend.tables_size(transaction.connection.dbapi, parts.schema.created) is not None:
            self.refresher = Refresh(self._tables_size)
            self.refresher.built()
        if first:  # the summary reports the run's own build, not the rebuilds after a raw COMMIT
            self.timings["schema"] = schema_done - started
            self.timings["fixtures"] = time.perf_counter() - schema_done

    # -- real commits ------------------------------------------------------------
    def enter_committed(self, *, replay: bool = True) -> list[Scope]:
        """Leave the run's transaction: schema, fixtures and the open scopes'
        setup, made again for real, on an engine of ordinary connections.
        ``replay`` false: the open scopes are the caller's to reopen (they
        are returned either way)."""
        parts, transaction = self.parts, self.transaction
        self.check_real_commits()
        with transaction.quiet():
            inner = parts.scopes.close_all()
        transaction.abandon()
        mode = CommittedMode(self.run_url, parts.schema, depth=len(inner) + 1, setup=self.setup)
        self.mode = mode
        parts.watch.checking = False  # other connections are the point now
        parts.redirection.point(mode.engine)
        parts.scopes.push(Scope(parts.database, 0, None, mode.engine, real_commits=True))
        mode.build()
        if replay:
            parts.scopes.replay(inner, mode)
        return inner

    def check_real_commits(self) -> None:
        """Raise the :class:`SetupError` of a run that cannot give real commits."""
        parts = self.parts
        if parts.parallel and parts.namespace_sql:
            # Their tables are made for real where any connection finds them,
            # as in production: in the database's own schema, which workers
            # sharing the database would all make them in.
            raise SetupError("real commits", "they cannot be given to parallel workers, which share one "
                             "database: run these tests without parallel workers (nose2 -N, pytest -n)")
        if not parts.backend.supports_real_commits:
            raise SetupError("real commits", f"other connections cannot open {self.connection.masked_url} (it "
                             "lives in the run's connection only): use a file (sqlite:///tests.db) or a server")

    def return_to_transaction(self, *, replay: bool = True) -> list[Scope]:
        """After the scope that asked for real commits: the run's transaction
        again (``replay`` false: the open scopes, returned, are the caller's to reopen)."""
        parts, mode = self.parts, self.mode
        inner = parts.scopes.close_all()
        if isinstance(mode, CommittedMode):
            mode.close()
        self.mode = self.transaction
        parts.watch.checking = True
        parts.redirection.point(self.transaction.engine)
        if replay:
            self._rebuild(inner)
        else:
            self.open_afresh()
        return inner

    def _rebuild(self, inner: list[Scope]) -> None:
        """The run's transaction made afresh, and the ``inner`` scopes
        (closed before) reopened in it with their setup run again."""
        self.open_afresh()
        self.parts.scopes.replay(inner, self.transaction)

    def open_afresh(self) -> None:
        """:meth:`open` again, after a repair or a refresh; the scopes are the caller's to reopen."""
        self.open()
        if self.refresher is not None:
            self.refresher.built()  # the tables are new: growth counts from here

    # -- long runs -------------------------------------------------------------
    def _tables_size(self) -> int:
        dbapi = self.connection.dbapi
        with dbapi.sqltx_lock():
            return self.parts.backend.tables_size(dbapi, self.parts.schema.created) or 0

    def refresh_if_grown(self) -> bool:
        """Between tests: build the run afresh if rolled-back rows have
        grown its tables past the limit (see :mod:`nose2_sqltx.refresh`),
        where every open scope's data comes back from its setup."""
        refresher = self.refresher
        if refresher is None or self.mode is not self.transaction or self.lost is not None \
                or self.transaction.ended or not all(scope.replayable for scope in self.parts.scopes.inner):
            return False
        if not refresher.due():
            return False
        self.refresh()
        return True

    def refresh(self) -> None:
        """Roll back for real, which frees what rolled-back rows left in the
        tables, and build the schema, the fixtures and the open scopes' setup again."""
        self.transaction.abandon()
        self._rebuild(self.parts.scopes.close_all())

    # -- repair ----------------------------------------------------------------
    def repair(self, *, rebuild: bool) -> TransactionEndedError:
        """Clean up after the run's transaction was ended behind our back.

        The transaction may have been committed (then the schema and data are
        in the database and must go) or rolled back. With ``rebuild``, the
        run is made afresh and the setup of the scopes still open replayed,
        so later tests work.
        """
        parts, transaction = self.parts, self.transaction
        statement = transaction.last_statement
        transaction.abandon()
        inner = parts.scopes.close_all()
        dropped: tuple[str, ...] = ()
        if parts.namespace_sql or parts.schema.created:
            # Committed work (raw COMMIT) or, where DDL is not transactional,
            # the schema itself: drop it all, the rebuild makes it afresh.
            with transaction.engine.connect() as conn:
                if parts.namespace is not None and parts.namespace_sql:
                    dropped = parts.backend.drop_private_namespace(conn, parts.namespace)
                else:
                    dropped = parts.schema.drop_created(conn)
        self.connection.dbapi.sqltx_real_rollback()
        committed = parts.backend.work_committed(statement, dropped)
        if rebuild:
            self._rebuild(inner)
        return TransactionEndedError(statement, committed=committed, dropped=dropped, rebuilt=rebuild)

    # -- the end -----------------------------------------------------------------
    def close(self, *, verify: bool) -> DatabaseChangedError | None:
        """Close the scopes, put the app's engines back, roll back everything,
        drop what was committed, compare the catalog (``verify``), close the
        connection. Returns what the catalog comparison found."""
        parts, mode = self.parts, self.mode
        if self.guard is not None:
            self.guard.stop()
        with mode.quiet():
            parts.scopes.close_all()
        parts.redirection.restore()
        try:
            if isinstance(mode, CommittedMode):  # stopped during real commits
                mode.close()
            if self.lost is None:
                return self._roll_back(verify)
            return None
        finally:
            self.connection.close()

    def _roll_back(self, verify: bool) -> DatabaseChangedError | None:
        parts, connection = self.parts, self.connection
        connection.dbapi.sqltx_disarm()
        connection.dbapi.sqltx_real_rollback()
        backend = parts.backend
        if not backend.transactional_ddl and not backend.owns_database and parts.schema.created:
            with connection.engine.connect() as conn:  # the schema was committed in the DSN's database
                parts.schema.drop_created(conn)
        with connection.engine.connect() as conn:
            parts.audit.restore_sequences(conn)
            return parts.audit.compare(conn) if verify else None
