"""The isolated mode: one run-long transaction, every scope a savepoint inside it.

:class:`RunTransaction` begins the run's transaction on the run's one
connection (the backend's BEGIN, timeouts and private namespace), arms the
:class:`~nose2_sqltx.savepoints.SavepointConnection`, and opens and ends
scopes as savepoints. When a scope ends it also tells whether the run's
transaction was ended behind its back (raw ``COMMIT``), which the run then
repairs, or whether the connection itself was lost, which nothing repairs.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from sqlalchemy import Engine

from .connection import RunConnection
from .dialects import Backend
from .errors import ConnectionLostError
from .scopes import After, Scope, ScopeStack

__unittest = True

__all__ = ["RunTransaction"]


class RunTransaction:
    """The run's transaction on ``connection``.

    ``namespace_sql``: statements that give the run a namespace of its own
    inside the transaction (a schema per parallel worker), or none.
    """

    real_commits = False

    def __init__(self, connection: RunConnection, backend: Backend, *, namespace_sql: list[str],
                 lock_timeout_ms: int, statement_timeout_ms: int) -> None:
        self.connection = connection
        self.backend = backend
        self.namespace_sql = namespace_sql
        self.lock_timeout_ms = lock_timeout_ms
        self.statement_timeout_ms = statement_timeout_ms
        #: set once the connection was found lost, for the rest of the run
        self.lost: ConnectionLostError | None = None

    @property
    def engine(self) -> Engine:
        return self.connection.engine

    @property
    def ended(self) -> bool:
        """Whether code under test ended the transaction (found so far)."""
        return self.connection.dbapi.sqltx_ended

    @property
    def last_statement(self) -> str | None:
        """The statement that ended it, if it was seen."""
        return self.connection.dbapi.sqltx_last_statement

    def owns(self, engine: Engine) -> bool:
        return self.connection.owns(engine)

    def begin(self) -> None:
        """Open the transaction; from now on app transaction control maps onto savepoints."""
        dbapi = self.connection.dbapi
        statements = self.backend.begin_sql() + self.backend.run_setup_sql(
            lock_timeout_ms=self.lock_timeout_ms, statement_timeout_ms=self.statement_timeout_ms
        )
        for sql in statements + self.namespace_sql:
            dbapi.sqltx_execute(sql)
        dbapi.sqltx_arm()

    def quiet(self) -> AbstractContextManager[None]:
        """App rollbacks while closing handles are no-ops: the scope's rollback follows."""
        return self.connection.dbapi.sqltx_quiet()

    def enter_scope(self, scope: Scope) -> None:
        try:
            self.connection.dbapi.sqltx_push(scope.savepoint)
        except self._driver_error as exc:
            self._raise_if_lost(exc)
            raise

    def leave_scope(self, scope: Scope, stack: ScopeStack) -> After:
        """Roll back to the scope's savepoint (kept as the spare)."""
        if self.ended:
            return After.REPAIR
        try:
            self.connection.dbapi.sqltx_pop(scope.savepoint)
        except self._driver_error as exc:
            self._raise_if_lost(exc)
            # The savepoint is gone: raw transaction control got past the
            # cursors (e.g. a cursor of another class).
            self.connection.dbapi.sqltx_mark_ended()
            return After.REPAIR
        return After.NOTHING

    def check_intact(self) -> None:
        """At the run's own level, where no scope ends to notice: find an end
        of the transaction that the cursors could not report."""
        dbapi = self.connection.dbapi
        if not dbapi.sqltx_armed or dbapi.sqltx_ended:
            return
        try:
            dbapi.sqltx_check_run()
        except self._driver_error as exc:
            self._raise_if_lost(exc)
            dbapi.sqltx_mark_ended()

    def abandon(self) -> None:
        """Leave the transaction: transaction control is real again, and
        whatever is left of the transaction is rolled back."""
        dbapi = self.connection.dbapi
        dbapi.sqltx_disarm()
        dbapi.sqltx_real_rollback()

    @property
    def _driver_error(self) -> type[Exception]:
        """The DB-API driver's base error class (what its statements raise)."""
        error: type[Exception] = self.connection.engine.dialect.loaded_dbapi.Error
        return error

    def found_lost(self, exc: BaseException) -> ConnectionLostError | None:
        """The loss of the connection, if ``exc`` (a test's error, say) says
        it was lost; remembered for the rest of the run."""
        if self.lost is None:
            self.lost = self.connection.lost(exc)
        return self.lost

    def _raise_if_lost(self, exc: Exception) -> None:
        lost = self.connection.lost(exc)
        if lost is not None:
            self.lost = lost
            raise lost from exc
