"""The run's connection over an async driver (asyncpg, psycopg async, aiosqlite, aiomysql, asyncmy).

SQLAlchemy reaches an async driver through an adapter of its own, a sync
DB-API connection whose calls await the driver's coroutines. The run's
connection wraps that adapter: :class:`AsyncRunConnection` is the
:class:`~nose2_sqltx.savepoints.SavepointConnection` every engine of the
run hands out, and :class:`AsyncRunCursor` reports every statement to it,
as the sync drivers' classes do. Every call into the adapter goes through
the run's loop (:mod:`nose2_sqltx.runloop`), so the driver's connection is
used on the loop it was made on, whoever calls and from which loop.

What differs between drivers is small and passed in as an
:class:`AsyncDriver`: how to read the transaction's state, and whether the
connection is still open.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.pool import Pool

from ..errors import ConnectionLostError, LoopBlockedError
from ..runloop import LoopBound, RunLoop, Turns, in_bridge
from ..savepoints import IDLE, INERROR, INTRANS, SavepointConnection, reported

__unittest = True

__all__ = ["AsyncDriver", "AsyncRunConnection", "AsyncRunCursor", "bridge_engine", "bridged_pool"]

#: the adapter's attributes that are the driver's own connection
_DRIVER_CONNECTION = frozenset({"_connection", "driver_connection"})
_MISSING = object()
#: connection settings that, while armed, are remembered instead of applied
_SETTINGS = frozenset({"autocommit", "readonly", "read_only", "deferrable", "isolation_level"})
#: the adapters' autocommit methods (aiomysql's, asyncmy's; the others' is a property, a setting above)
_AUTOCOMMIT_METHODS = frozenset({"autocommit", "get_autocommit"})


@dataclass(frozen=True)
class AsyncDriver:
    """What the run needs to know of one async driver's connection (``raw``:
    the driver's own object, which must not be awaited outside the run's loop)."""

    #: the transaction state of the run's connection (given), as IDLE /
    #: INTRANS / INERROR, where the driver can say (None: the connection
    #: follows it from the statements' outcomes)
    status: Callable[[AsyncRunConnection], int] | None = None
    #: whether the driver still has a connection to the server
    alive: Callable[[Any], bool] = lambda raw: True
    #: the driver's own coroutine that runs the run's statements (several
    #: separated by ';' where the driver allows), past SQLAlchemy's adapter
    execute: Callable[[Any, str], Awaitable[Any]] | None = None
    #: whether a call can carry several statements separated by ';'
    one_statement_per_call: bool = False
    #: the file descriptor of the connection's socket (see ``Backend.socket_fd``)
    fileno: Callable[[Any], int | None] = lambda raw: None
    #: raise, before it runs, for a statement the backend cannot isolate
    precheck: Callable[[Any, object], None] | None = None
    #: the app's own BEGIN, which starts nothing inside the test transaction
    #: (SQLite: SQLAlchemy's savepoint recipe), and the error a second one gets
    app_begin: re.Pattern[str] | None = None
    nested_begin_error: Callable[[], Exception] | None = None
    #: whether cancelling the driver's task while a statement runs closes its
    #: connection (aiomysql, asyncmy): a caller's cancel is then carried out
    #: by the backend's own ``cancel`` (KILL QUERY), and the connection stays
    cancel_closes: bool = False
    #: whether the driver's connection works only on the loop it was made on
    #: (asyncpg's, aiomysql's: their streams are the loop's); psycopg's and
    #: aiosqlite's wait on whichever loop runs them
    loop_bound: bool = True
    #: whether ``isolation_level = None`` on the adapter means autocommit (aiosqlite's, as sqlite3's)
    none_level_autocommits: bool = False


class AsyncRunCursor:
    """A cursor of SQLAlchemy's async adapter, reporting each statement to
    the run's connection and calling the adapter through the run's loop."""

    def __init__(self, connection: AsyncRunConnection, inner: Any) -> None:
        self.__dict__["_sqltx_conn"] = connection
        self.__dict__["_sqltx_inner"] = inner

    @property
    def connection(self) -> AsyncRunConnection:
        return self._sqltx_conn  # type: ignore[no-any-return]

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        conn = self._sqltx_conn
        driver = conn._sqltx_driver
        if driver.app_begin is not None and driver.nested_begin_error is not None and isinstance(operation, str) \
                and driver.app_begin.match(operation) and conn.sqltx_armed and not conn.sqltx_ended:
            conn.sqltx_app_begin(driver.nested_begin_error)
            return None
        return reported(conn, operation, lambda: conn._sqltx_outcome(
            lambda: conn._sqltx_loop.call_for(conn, self._sqltx_inner.execute, operation, parameters)))

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        conn = self._sqltx_conn
        return reported(conn, operation, lambda: conn._sqltx_outcome(
            lambda: conn._sqltx_loop.call_for(conn, self._sqltx_inner.executemany, operation, seq_of_parameters)))

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._sqltx_inner, name)
        if callable(value) and not isinstance(value, type):
            conn = self._sqltx_conn
            return lambda *args, **kwargs: conn._sqltx_loop.call_for(conn, value, *args, **kwargs)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._sqltx_inner, name, value)

    def __iter__(self) -> Any:
        while True:
            row = self.fetchone()
            if row is None:
                return
            yield row

    def __enter__(self) -> AsyncRunCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncRunConnection(SavepointConnection):
    """The run's one connection, over SQLAlchemy's adapter of an async driver.

    Attributes the run does not own are the adapter's, read (and called)
    through the run's loop: ``driver_connection``, ``_connection``, the
    adapter's own methods.
    """

    _sqltx_inner: Any
    _sqltx_loop: RunLoop
    _sqltx_driver: AsyncDriver
    #: cancels the running statement from another thread, where the driver's
    #: own cancel would close the connection (set by :func:`bridge_engine`);
    #: on the class, as every driver call looks for it
    sqltx_cancel_statement: Callable[[], None] | None = None

    def __init__(self, inner: Any, loop: RunLoop, driver: AsyncDriver) -> None:
        d = self.__dict__
        d["_sqltx_inner"] = inner
        d["_sqltx_loop"] = loop
        d["_sqltx_driver"] = driver
        d["_sqltx_one_statement_per_call"] = driver.one_statement_per_call
        #: the transaction's state as the statements left it (drivers that cannot say)
        d["_sqltx_followed"] = INTRANS

    # -- the adapter, through the run's loop ------------------------------------
    def __getattr__(self, name: str) -> Any:
        value = getattr(self._sqltx_inner, name)
        if name in _AUTOCOMMIT_METHODS and callable(value) and self.sqltx_armed:
            # aiomysql's and asyncmy's autocommit(on): inside the run's
            # transaction, remembered and emulated, as with the sync drivers
            if name == "autocommit":
                return lambda on: self.sqltx_remember("autocommit", bool(on))
            return lambda: bool(self.sqltx_remembered("autocommit", False))
        if name in _DRIVER_CONNECTION and self._sqltx_driver.loop_bound and not self._sqltx_loop.in_loop_thread() \
                and not in_bridge():
            # Code that reaches past the adapter (a dialect setting up a
            # connection an app engine was handed, driver_connection) from
            # another loop: the driver's coroutines still run on the run's.
            return LoopBound(value, self._sqltx_loop, self)
        if callable(value) and not isinstance(value, type):
            return lambda *args, **kwargs: self._sqltx_loop.call_for(self, value, *args, **kwargs)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_sqltx") or name in type(self).__dict__ or name in SavepointConnection.__dict__:
            self.__dict__[name] = value
        elif name in _SETTINGS and self.sqltx_armed:
            self.sqltx_remember(name, value)
            if name == "isolation_level" and self._sqltx_driver.none_level_autocommits:
                self.sqltx_remember("autocommit", value is None)
        elif name in _SETTINGS and getattr(self._sqltx_inner, name, _MISSING) == value:
            # Already so (the run set it up that way: SQLite's isolation_level
            # None). aiosqlite's adapter would wait for the change on the
            # caller's loop, which a sync caller does not have.
            return
        else:
            self._sqltx_loop.call_for(self, setattr, self._sqltx_inner, name, value)

    def set_isolation_level(self, level: Any) -> None:
        if not self.sqltx_armed:
            self._sqltx_loop.call_for(self, self._sqltx_inner.set_isolation_level, level)
            return
        self.sqltx_remember("autocommit", str(level).upper() == "AUTOCOMMIT")
        self.sqltx_remember("isolation_level", level)

    def cursor(self, *args: Any, **kwargs: Any) -> AsyncRunCursor:
        return AsyncRunCursor(self, self._sqltx_loop.call_for(self, self._sqltx_inner.cursor, *args, **kwargs))

    def _sqltx_outcome(self, run: Callable[[], Any]) -> Any:
        """Run one statement, following the transaction's state from its outcome."""
        try:
            result = run()
        except BaseException as exc:  # a cancelled statement fails the transaction too
            if _is_server_error(exc):
                self.__dict__["_sqltx_followed"] = INERROR
            raise
        self.__dict__["_sqltx_followed"] = INTRANS
        return result

    @property
    def sqltx_raw(self) -> Any:
        """The driver's own connection (use it on the run's loop only)."""
        return self._sqltx_inner._connection

    def sqltx_scalar(self, sql: str) -> Any:
        """The first column of the first row of ``sql``, run for the run's
        own purposes (not the app's statement: in no query log)."""

        def run() -> Any:
            cursor = self._sqltx_inner.cursor()
            try:
                cursor.execute(sql)
                row = cursor.fetchone()
            finally:
                cursor.close()
            return row[0] if row else None

        return self._sqltx_loop.call_for(self, run)

    def sqltx_cancel(self) -> bool:
        """Cancel the statement running now, from another thread (a signal's)."""
        return self._sqltx_loop.cancel_running()

    # -- SavepointConnection's driver hooks --------------------------------------
    def _sqltx_precheck(self, statement: object) -> None:
        precheck = self._sqltx_driver.precheck
        if precheck is not None:
            precheck(self, statement)

    def _sqltx_exec(self, sql: str) -> None:
        execute = self._sqltx_driver.execute
        if execute is not None and self._sqltx_status() == IDLE:
            # Some adapters (asyncpg's) begin the transaction themselves, at their first statement.
            self.sqltx_scalar("SELECT 1")
        if execute is not None:
            raw = self.sqltx_raw
            self._sqltx_outcome(lambda: self._sqltx_loop.run(execute(raw, sql), self))
            return

        def run() -> None:
            cursor = self._sqltx_inner.cursor()
            try:
                cursor.execute(sql)
            finally:
                cursor.close()

        self._sqltx_outcome(lambda: self._sqltx_loop.call_for(self, run))

    def _sqltx_status(self) -> int:
        status = self._sqltx_driver.status
        if status is not None:
            return status(self)
        if not self._sqltx_inner_in_transaction():
            return IDLE
        return int(self._sqltx_followed)

    def _sqltx_inner_in_transaction(self) -> bool:
        raw = self.sqltx_raw
        check = getattr(raw, "is_in_transaction", None)  # asyncpg
        return bool(check()) if check is not None else True

    def rollback(self) -> None:
        try:
            super().rollback()
        except LoopBlockedError:
            # Another thread's rollback while a test blocks the run's loop
            # (nose2_sqltx.testloop): its statements never reached the
            # database, so it has nothing of its own to undo; the test fails
            # with the error its first statement got.
            pass

    def close(self) -> None:
        try:
            super().close()
        except LoopBlockedError:
            pass  # as rollback()

    def _sqltx_real_commit(self) -> None:
        self._sqltx_loop.call_for(self, self._sqltx_inner.commit)

    def _sqltx_real_rollback(self) -> None:
        self._sqltx_loop.call_for(self, self._sqltx_inner.rollback)

    def _sqltx_real_close(self) -> None:
        self._sqltx_loop.call_for(self, self._sqltx_inner.close)

    def _sqltx_alive(self) -> bool:
        return self._sqltx_driver.alive(self.sqltx_raw)

    def _sqltx_new_lock(self) -> Any:
        return Turns()  # tasks of one loop take turns too

    def terminate(self) -> None:
        # A pool that gives up on the connection: while armed, the run's stays
        # open, as with close(). (The adapter's own terminate may await a
        # graceful close on the caller's loop.)
        if self.sqltx_armed:
            self.close()
            return
        self._sqltx_real_close()


def _is_server_error(exc: BaseException) -> bool:
    """Whether ``exc`` came from the server (which fails the transaction)
    rather than from the client before anything was sent."""
    if isinstance(exc, asyncio.CancelledError):
        return True  # the driver had the server cancel it
    if isinstance(exc, LoopBlockedError):
        return False  # never sent
    name = type(exc).__name__
    return name not in {"InterfaceError", "ProgrammingError"} or hasattr(exc, "sqlstate")


def bridged_pool(poolclass: type[Pool], loop: RunLoop) -> type[Pool]:
    """``poolclass`` whose checkouts run through ``loop``: a new connection,
    the dialect's set-up of it (which awaits the driver directly) and the
    pool's own calls all reach the driver on the run's loop."""

    def connect(self: Pool) -> Any:
        return loop.call(poolclass.connect, self)

    return type(f"Bridged{poolclass.__name__}", (poolclass,), {"connect": connect})


def bridge_engine(engine: Engine, loop: RunLoop, driver: AsyncDriver,
                  connect_params: Callable[[dict[str, Any]], None] | None = None,
                  cancel: Callable[[Any], None] | None = None, once: str | None = None) -> None:
    """Make ``engine`` (a sync Engine on an async dialect, made with a
    :func:`bridged_pool`) hand out :class:`AsyncRunConnection` objects made
    on ``loop``; ``connect_params`` may adjust the driver's arguments;
    ``cancel(connection)`` cancels a connection's running statement from
    another thread (for drivers whose own cancel closes the connection);
    ``once`` (the run's engine: what messages call its database): a second
    connection is refused, as it would be outside the run's transaction."""
    made: list[AsyncRunConnection] = []

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, rec: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        if once is not None and made:
            # SQLAlchemy gave the run's connection up and asks for a new one,
            # whose work would be outside the test transaction.
            raise ConnectionLostError(once, "SQLAlchemy gave up the run's connection; the run cannot go on")
        if connect_params is not None:
            connect_params(cparams)
        connection = AsyncRunConnection(loop.call(dialect.dbapi.connect, *cargs, **cparams), loop, driver)
        if driver.cancel_closes and cancel is not None:
            connection.__dict__["sqltx_cancel_statement"] = lambda: cancel(connection)
        made.append(connection)
        return connection
