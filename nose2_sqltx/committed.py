"""The real-commit mode: Django's TransactionTestCase for the scopes that ask for it.

Some code needs the database to really commit (``LISTEN``/``NOTIFY``,
``CREATE INDEX CONCURRENTLY``, several connections that see each other's
work). While a scope with ``real_commits`` is open, the run leaves its
transaction (see :meth:`~nose2_sqltx.isolation.IsolatedDatabase.begin_scope`)
and :class:`CommittedMode` takes over: the schema and the fixtures are made
for real on an engine of ordinary connections; between the tests of such a
class the tables are emptied and the fixtures and class data made again;
when the scope that asked ends, the tables are dropped and the run returns
to its transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, MetaData
from sqlalchemy.engine import URL

from .connect_setup import ConnectSetup
from .schema import Schema
from .scopes import After, Scope, ScopeStack

__unittest = True

__all__ = ["CommittedMode"]

#: why the tables are committed, for the error about tables that exist already
_WHY = ("for real commits the run creates its tables for real and drops them after the test, "
        "which would take these with them")


class CommittedMode:
    """Real commits on ``run_url`` for the scope at ``depth`` and the scopes inside it."""

    real_commits = True

    def __init__(self, run_url: URL, schema: Schema, depth: int, setup: ConnectSetup | None = None) -> None:
        self.schema = schema
        self.depth = depth
        setup = setup or ConnectSetup()
        # Its connections are set up as the app's engines set up theirs.
        self._engine = schema.backend.create_engine(run_url, connect_args=dict(setup.connect_args))
        setup.install(self._engine)
        # Reflected once per stretch of real commits: it costs more than the deletes.
        self._reflected: MetaData | None = None

    @property
    def engine(self) -> Engine:
        return self._engine

    def owns(self, engine: Engine) -> bool:
        return engine.pool is self._engine.pool

    @contextmanager
    def quiet(self) -> Iterator[None]:
        yield  # ordinary connections: their rollbacks are real and harmless

    def build(self) -> None:
        """Make the schema and run the fixtures, committed."""
        with self._engine.connect() as conn:
            self.schema.create(conn, committed=True, why=_WHY)
            self.schema.run_fixtures(conn)

    def enter_scope(self, scope: Scope) -> None:
        pass  # nothing to set: the scope's work is committed as it goes

    def leave_scope(self, scope: Scope, stack: ScopeStack) -> After:
        """A test inside the scope that asked: empty the tables, run the
        fixtures and the open scopes' setup again, for the next test. The
        scope that asked: the run returns to its transaction."""
        if scope.depth <= self.depth:
            return After.RETURN
        inner = stack.close_all(keep_run=True)
        with self._engine.connect() as conn:
            if self._reflected is None:
                self._reflected = self.schema.reflect_created(conn)
            Schema.empty(conn, self._reflected)
            self.schema.run_fixtures(conn)
        stack.replay(inner, self)
        return After.NOTHING

    def close(self) -> None:
        """Drop the tables the run made and close the engine's connections."""
        try:
            with self._engine.connect() as conn:
                self.schema.drop_created(conn)
        finally:
            self._engine.dispose()
