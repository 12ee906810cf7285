"""Scopes: one level of isolation each (the run, a class, a test), and the stack of open ones.

A :class:`Scope` hands out the handles a test uses (``engine``,
``connection``, ``session``) and logs the SQL sent while it is the innermost
scope. :class:`ScopeStack` keeps the open scopes in order, routes the query
log to the innermost one, and tells the app's scoped sessions (through the
:class:`~nose2_sqltx.redirect.Redirection`) where each scope starts and ends.
How a scope is isolated (a savepoint, or real commits) is the run's current
mode's business, not the stack's.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from .errors import AsyncDriverRequiredError, NotActiveError, ScopeEndedError, StrayAccessError, UnknownDatabaseError
from .redirect import Redirection

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

__unittest = True

__all__ = ["Scope", "ScopeStack", "ScopeOwner", "Mode", "After", "Databases"]


class ScopeOwner(Protocol):
    """What opened a scope, and ends it (an :class:`~nose2_sqltx.isolation.IsolatedDatabase`)."""

    def end_scope(self, scope: Scope) -> None: ...


class After(enum.Enum):
    """What the end of a scope left for the run to do."""

    #: nothing: the next scope can start
    NOTHING = "nothing"
    #: the run's transaction was found ended behind its back: repair the run
    REPAIR = "repair"
    #: the scope that asked for real commits ended: return to the run's transaction
    RETURN = "return"


class Mode(Protocol):
    """How scopes are isolated now: savepoints in the run's transaction
    (:class:`~nose2_sqltx.transaction.RunTransaction`) or real commits
    (:class:`~nose2_sqltx.committed.CommittedMode`)."""

    real_commits: bool

    @property
    def engine(self) -> Engine: ...

    def owns(self, engine: Engine) -> bool: ...

    def quiet(self) -> AbstractContextManager[None]: ...

    def enter_scope(self, scope: Scope) -> None: ...

    def leave_scope(self, scope: Scope, stack: ScopeStack) -> After: ...


class Scope:
    """One level of isolation (the run, a class, a test) and its handles.

    ``engine``: an Engine whose every connection is the test transaction.
    ``connection`` and ``session`` are made on first use and closed when the
    scope ends. With an async driver, ``async_engine``, ``async_connection``
    and ``async_session`` are their asyncio counterparts, on the same
    transaction. All handles share one transaction: a commit through any of
    them keeps the work until the scope ends; a rollback through any of them
    undoes everything since the last commit.

    ``setup``, if given, is called when the scope opens and again whenever
    the run has to make it afresh (after code under test ended the run's
    transaction, or around real commits). ``real_commits``: the scope's
    handles really commit (see :meth:`IsolatedDatabase.begin_scope`).
    """

    def __init__(self, database: ScopeOwner, depth: int, setup: Callable[[], object] | None,
                 engine: Engine, *, real_commits: bool = False) -> None:
        self.database = database
        self.setup = setup
        self.engine = engine
        self.real_commits = real_commits
        self.depth = depth
        self.savepoint = f"sqltx_{depth}"
        self.closed = False
        #: the SQL that went through the scope's handles and the app's
        #: redirected engines while this was the innermost scope, in order
        self.queries: list[str] = []
        #: called with each statement as it is logged (``assertNoRepeatedQueries`` blocks)
        self.watches: list[Callable[[str], None]] = []
        #: what the scope is, for messages (the test's id, the class's name)
        self.label = f"scope {depth}"
        #: only-database-tests: whether the scope's test (not a DatabaseTest)
        #: has its statements refused, and the first refusal
        self.stray = False
        self.stray_error: StrayAccessError | None = None
        #: the threads alive when the scope opened (see :mod:`nose2_sqltx.threadwatch`)
        self.threads_before: frozenset[Any] = frozenset()
        #: how many of :attr:`queries` the scope's setup sent
        self.after_setup = 0
        #: where the leak watch stood when the scope opened
        self.leak_mark = 0
        #: reset-sequences: the values this scope's children start from (taken
        #: when the first of them opens), and the values to put back at this
        #: scope's end (its parent's)
        self.sequences: dict[str, int | None] | None = None
        self.restore_sequences: dict[str, int | None] | None = None
        #: the scopes opened with this one on the run's other databases (``[sqltx:<name>]``), by name
        self.databases: Databases = Databases()
        self._connection: Connection | None = None
        self._session: Session | None = None
        self._async: dict[str, Any] = {}

    @property
    def replayable(self) -> bool:
        """Whether running the setup again makes the scope's data again: no
        statement went through it but its setup's (setUpClass's own writes
        after ``super()``, say, would be lost)."""
        return len(self.queries) == self.after_setup

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

    @property
    def async_engine(self) -> AsyncEngine:
        """An ``AsyncEngine`` whose every connection is the test transaction."""
        engine: AsyncEngine | None = self._async.get("engine")
        if engine is None or engine.sync_engine is not self.engine:
            self._check_open()
            if not self.engine.dialect.is_async:
                raise AsyncDriverRequiredError(str(self.engine.url), self.engine.dialect.driver)
            from sqlalchemy.ext.asyncio import AsyncEngine

            engine = self._async["engine"] = AsyncEngine(self.engine)
        return engine

    @property
    def async_connection(self) -> AsyncConnection:
        """An ``AsyncConnection`` in the test transaction (made on first use)."""
        connection: AsyncConnection | None = self._async.get("connection")
        if connection is None:
            from sqlalchemy.ext.asyncio import AsyncConnection

            engine = self.async_engine
            connection = self._async["connection"] = AsyncConnection(engine, self.engine.connect())
        return connection

    @property
    def async_session(self) -> AsyncSession:
        """An ``AsyncSession`` in the test transaction (made on first use)."""
        session: AsyncSession | None = self._async.get("session")
        if session is None:
            from sqlalchemy.ext.asyncio import AsyncSession

            session = self._async["session"] = AsyncSession(bind=self.async_engine)
        return session

    def _check_open(self) -> None:
        if self.closed:
            raise ScopeEndedError(self.depth)

    def close(self) -> None:
        """Close the handles (the scope's transaction is rolled back right after)."""
        # An async handle closes through its sync one: the run's connection
        # reaches the driver from sync code too (see runloop.py).
        session, connection = self._async.get("session"), self._async.get("connection")
        self._async = {}
        for handle in (session and session.sync_session, connection and connection.sync_connection,
                       self._session, self._connection):
            if handle is not None:
                try:
                    handle.close()
                except Exception:  # noqa: BLE001 - the scope's rollback, right after, decides
                    pass
        self._session = self._connection = None
        self.closed = True

    def reopen(self, depth: int, engine: Engine, *, real_commits: bool) -> None:
        """Open again at ``depth`` (the run made the scopes afresh)."""
        self.depth = depth
        self.savepoint = f"sqltx_{depth}"
        self.engine = engine
        self.real_commits = real_commits
        self.closed = False
        self.queries = []
        self.sequences = None  # the run was made afresh: taken again when needed

    def __enter__(self) -> Scope:
        return self

    def __exit__(self, *exc: object) -> None:
        self.database.end_scope(self)

    def __repr__(self) -> str:
        return f"<Scope depth={self.depth} {'closed' if self.closed else 'open'}>"


class Databases(dict[str, "Scope"]):
    """A scope's counterparts on the run's other databases, by name; an
    unknown name is an :class:`~nose2_sqltx.errors.UnknownDatabaseError`."""

    def __missing__(self, name: str) -> Scope:
        raise UnknownDatabaseError(name, tuple(self))


class ScopeStack:
    """The open scopes, outermost (the run's) first."""

    def __init__(self, redirection: Redirection) -> None:
        self.redirection = redirection
        self._scopes: list[Scope] = []

    def __len__(self) -> int:
        return len(self._scopes)

    def __contains__(self, scope: object) -> bool:
        return scope in self._scopes

    @property
    def outermost(self) -> Scope:
        """The run's own scope."""
        if not self._scopes:
            raise NotActiveError("this IsolatedDatabase (it is not started)")
        return self._scopes[0]

    @property
    def innermost(self) -> Scope:
        if not self._scopes:
            raise NotActiveError("this IsolatedDatabase (it is not started)")
        return self._scopes[-1]

    def innermost_if_open(self) -> Scope | None:
        """The innermost scope, if any is open."""
        return self._scopes[-1] if self._scopes else None

    @property
    def inner(self) -> list[Scope]:
        """The open scopes inside the run's own, outermost first."""
        return self._scopes[1:]

    def log(self, statement: str) -> None:
        """A statement through the run's engines: the innermost scope's."""
        if self._scopes:
            scope = self._scopes[-1]
            scope.queries.append(statement)
            for watch in scope.watches:
                watch(statement)

    def push(self, scope: Scope) -> None:
        self._scopes.append(scope)
        self.redirection.begin_scope()

    def pop_through(self, scope: Scope) -> None:
        """Close ``scope`` and every scope still open inside it, innermost first."""
        while self._scopes:
            inner = self._scopes.pop()
            inner.close()
            self.redirection.end_scope()
            if inner is scope:
                return

    def close_all(self, *, keep_run: bool = False) -> list[Scope]:
        """Close every scope (``keep_run``: but the run's own) and the app's
        scoped sessions, because the data under them is about to go; return
        the inner ones, for :meth:`replay`."""
        inner = self.inner
        for scope in reversed(self._scopes[1:] if keep_run else self._scopes):
            scope.close()
        self._scopes = self._scopes[:1] if keep_run else []
        self.redirection.end_all()
        return inner

    def replay(self, scopes: list[Scope], mode: Mode) -> None:
        """Reopen ``scopes`` (callers hold these objects) in ``mode``,
        outermost first, running their setup again."""
        for scope in scopes:
            self.reopen(scope, mode)
            if scope.setup is not None:
                scope.setup()
            scope.after_setup = len(scope.queries)

    def reopen(self, scope: Scope, mode: Mode) -> None:
        """Reopen ``scope`` (closed by :meth:`close_all`) as the innermost, in ``mode``; its setup is the caller's."""
        scope.reopen(len(self._scopes), mode.engine, real_commits=mode.real_commits)
        mode.enter_scope(scope)
        self.push(scope)
