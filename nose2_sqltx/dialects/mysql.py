"""MySQL and MariaDB: DDL commits implicitly, so the schema lives in a database of the run's own.

A ``CREATE TABLE`` inside the run's transaction would commit it (and every
row written before it) and destroy its savepoints. So, on these servers:

* the run makes a fresh database, ``sqltx_run_<random>`` (unique across
  hosts and containers), with the character set and collation of the DSN's
  database (:meth:`MySQL.prepare`); the schema is created there, committed,
  before the run's transaction;
* each test's data is isolated with savepoints exactly as on PostgreSQL;
* the database is dropped when the run ends (:meth:`MySQL.release`). A run
  that was killed leaves it behind; the next run on the same server drops it
  once the server says its run is gone: the run's admin connection holds a
  named lock (``GET_LOCK``) of the database's name for as long as it lives,
  which the server frees when that connection ends. A view ``sqltx_run`` in
  each such database records the connection and the user: a database
  without it, or another user's, is never dropped.
* a statement that would commit implicitly (DDL, ``BEGIN``, ``SET
  autocommit``, ``LOCK TABLES``, ...) is refused before it runs, with
  :class:`~nose2_sqltx.errors.ImplicitCommitError`.

With ``create-database = false`` the DSN's own database is used instead: the
schema's tables are created there (the run refuses to start if any of them
exists already) and dropped at the end.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from ..errors import ImplicitCommitError, SetupError
from ..leaks import unwatched
from ..messages import exception_chain, first_line, short_sql
from ..savepoints import IDLE, INTRANS, SavepointConnection, reported
from .async_drivers import AsyncDriver, AsyncRunConnection
from .base import (
    OWN_CLASS,
    RUN_NAME_PREFIX,
    RUN_NAMES_LIKE,
    SYSTEM_SCHEMAS,
    Backend,
    new_run_name,
    register,
    remember_isolation_level,
)
from .mysql_statements import ends_transaction, implicit_commit_fix, rolls_back

__unittest = True

#: the view in each run database that names the connection which made it
OWNER_VIEW = "sqltx_run"

_SERVER_STATUS_IN_TRANS = 1
_LOCK_WAIT_TIMEOUT = 1205
_STATEMENT_TIMEOUTS = {1969, 3024}  # MariaDB max_statement_time, MySQL max_execution_time

def _adapter(module: str) -> tuple[Any, Any]:
    """Savepoint connection and cursor classes for PyMySQL or mysqlclient, whose
    connection APIs are alike (``autocommit()`` and ``begin()`` are methods)."""
    base: Any = importlib.import_module(f"{module}.connections").Connection
    base_cursor: Any = importlib.import_module(f"{module}.cursors").Cursor
    status_known = module == "pymysql"

    class Cursor(base_cursor):
        def execute(self, query: Any, args: Any = None) -> Any:
            return reported(self.connection, query, lambda: super(Cursor, self).execute(query, args))

        def executemany(self, query: Any, args: Any) -> Any:
            return reported(self.connection, query, lambda: super(Cursor, self).executemany(query, args))

        def close(self) -> None:
            # mysqlclient reads what is left of the results here, on the
            # connection: not while another thread runs a statement on it.
            lock = getattr(self.connection, "_sqltx_lock", None) if self.connection is not None else None
            if lock is None:
                super().close()
                return
            with lock:
                super().close()

    class MySQLConnection(SavepointConnection, base):
        _sqltx_server = "MySQL"

        def cursor(self, *args: Any, **kwargs: Any) -> Any:
            self._sqltx_dirty = True  # a cursor of another class bypasses ours
            if not args and not kwargs:
                return super().cursor(Cursor)
            return super().cursor(*args, **kwargs)

        def _sqltx_exec(self, sql: str) -> None:
            cur = base_cursor(self)  # plain: not reported
            try:
                cur.execute(sql)
            finally:
                cur.close()

        _sqltx_one_statement_per_call = True  # no multi-statement queries unless the client asks

        _sqltx_ending = False  # mysqlclient: the statement running is a COMMIT or ROLLBACK

        def _sqltx_precheck(self, statement: object) -> None:
            fix = implicit_commit_fix(statement)
            if fix is not None:
                raise ImplicitCommitError(short_sql(statement), self._sqltx_server, fix)
            if not status_known:
                self._sqltx_ending = ends_transaction(statement)

        def _sqltx_status(self) -> int:
            # PyMySQL keeps the server's status flags of the last OK packet.
            # mysqlclient does not expose them, so there a COMMIT or ROLLBACK
            # is known by its text; one the cursors cannot see (a stored
            # procedure, a foreign cursor) is found when the scope ends, as
            # its savepoint is gone.
            if not status_known:
                ending, self._sqltx_ending = self._sqltx_ending, False
                return IDLE if ending else INTRANS
            return INTRANS if (self.server_status or 0) & _SERVER_STATUS_IN_TRANS else IDLE

        def _sqltx_real_commit(self) -> None:
            base.commit(self)

        def _sqltx_real_rollback(self) -> None:
            base.rollback(self)

        def _sqltx_real_close(self) -> None:
            if self.open:  # both drivers raise on a second close; psycopg does not
                base.close(self)

        def _sqltx_alive(self) -> bool:
            return bool(self.open)

        def autocommit(self, value: Any) -> None:
            if self.sqltx_armed:
                self.sqltx_remember("autocommit", bool(value))
            else:
                base.autocommit(self, value)

        def get_autocommit(self) -> bool:
            if self.sqltx_armed:
                return bool(self.sqltx_remembered("autocommit", False))
            return bool(base.get_autocommit(self))

        def begin(self) -> None:
            # The run's transaction is always open; a real BEGIN would commit it.
            if not self.sqltx_armed:
                base.begin(self)

    return MySQLConnection, Cursor


def _async_precheck(connection: Any, statement: object) -> None:
    fix = implicit_commit_fix(statement)
    if fix is not None:
        raise ImplicitCommitError(short_sql(statement), connection._sqltx_server, fix)
    connection._sqltx_ending = ends_transaction(statement)


def _aiomysql_status(connection: Any) -> int:
    # aiomysql keeps the server's status flags of the last OK packet, as PyMySQL does.
    return INTRANS if (connection.sqltx_raw.server_status or 0) & _SERVER_STATUS_IN_TRANS else IDLE


def _asyncmy_status(connection: Any) -> int:
    # asyncmy does not keep them up to date: as with mysqlclient, a COMMIT or
    # ROLLBACK is known by its text (one the cursors cannot see is found when
    # the scope ends, as its savepoint is gone).
    ending, connection._sqltx_ending = getattr(connection, "_sqltx_ending", False), False
    return IDLE if ending else INTRANS


def _async_driver(status: Any) -> AsyncDriver:
    return AsyncDriver(status=status, alive=lambda raw: not getattr(raw, "closed", False),
                       one_statement_per_call=True, precheck=_async_precheck, cancel_closes=True)


@cache
def _classes(driver: str) -> tuple[Any, Any]:
    return _adapter("pymysql" if driver == "pymysql" else "MySQLdb")


@register("mysql")
class MySQL(Backend):
    """MySQL or MariaDB through PyMySQL (``mysql+pymysql://``) or mysqlclient
    (``mysql://``, ``mysql+mysqldb://``)."""

    display_name = "MySQL"
    drivers: ClassVar[dict[str, str]] = {"pymysql": "PyMySQL", "mysqldb": "mysqlclient",
                                         "aiomysql": "aiomysql", "asyncmy": "asyncmy"}
    async_drivers: ClassVar[Mapping[str, AsyncDriver]] = {"aiomysql": _async_driver(_aiomysql_status),
                                                          "asyncmy": _async_driver(_asyncmy_status)}
    own_connect_args: ClassVar[Mapping[str, object]] = {"cursorclass": OWN_CLASS}
    transactional_ddl = False
    worker_namespace = "a database of its own, dropped at the end"
    concurrent_runs_fix = ("with create-database = false runs share the DSN's database: remove it, so that each "
                           "run makes a database of its own")
    # AUTO_INCREMENT is set back only by ALTER TABLE, which commits.
    resets_sequences = False

    def __init__(self, url: URL, key: str = "dsn", **options: Any) -> None:
        super().__init__(url, key, **options)
        self.database: str | None = None  # the run's own, once made
        self._admin_engine: Engine | None = None
        self._admin: Connection | None = None
        self.mariadb = url.get_backend_name() == "mariadb"

    @property
    def cleanup_note(self) -> str:
        if self.create_database:
            return "all rolled back, the run's own database dropped"
        return "all rolled back, the tables it created dropped"

    @property
    def owns_database(self) -> bool:
        return self.database is not None

    def user_tables(self, conn: Connection) -> list[str]:
        # The DSN's database, also when the run works in a database of its own.
        return list(conn.execute(text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = :db"
        ), {"db": self.url.database or ""}).scalars())

    def _schemas(self, conn: Connection) -> list[str]:
        # Other runs' databases come and go while this one runs.
        return [s for s in conn.execute(text(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT LIKE :pattern"
        ), {"pattern": RUN_NAMES_LIKE}).scalars() if s.lower() not in SYSTEM_SCHEMAS]

    # -- the run's own database ----------------------------------------------
    def prepare(self) -> URL:
        if not self.create_database:
            return self.url
        # A plain connection (no savepoint mapping) that lives as long as the run: its id
        # names the database, and it is what tells later runs this one is alive.
        self._admin_engine = unwatched(self.create_engine(self.url, side=True, poolclass=NullPool))
        admin = self._admin = self._admin_engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        me, user, charset, collation = admin.execute(text(
            "SELECT CONNECTION_ID(), CURRENT_USER(), "
            "(SELECT default_character_set_name FROM information_schema.schemata WHERE schema_name = DATABASE()), "
            "(SELECT default_collation_name FROM information_schema.schemata WHERE schema_name = DATABASE())"
        )).one()
        self.reap_databases(admin, me, user)
        name = new_run_name()
        options = f" CHARACTER SET {charset} COLLATE {collation}" if charset and collation else ""
        try:
            admin.exec_driver_sql(f"CREATE DATABASE `{name}`{options}")
        except DBAPIError as exc:
            raise SetupError(
                "creating the run's own database",
                f"{first_line(exc)}. On {self.display_name} DDL cannot be rolled back, so each run makes a "
                f"database named {RUN_NAME_PREFIX}<random> and drops it at the end: grant this user CREATE and "
                "DROP on them, or set create-database = false under [sqltx] to use the DSN's database",
            ) from exc
        self.database = name
        # Held until the admin connection ends (the run, or its process, is gone).
        admin.execute(text("SELECT GET_LOCK(:name, 0)"), {"name": name})
        admin.exec_driver_sql(
            f"CREATE VIEW `{name}`.`{OWNER_VIEW}` AS SELECT {int(me)} AS owner_connection, "
            f"{_quote(user)} AS owner_user, {_quote(self.url.database or '')} AS dsn_database"
        )
        return self.url.set(database=name)

    def release(self) -> None:
        try:
            if self.database is not None and self._admin is not None:
                self._drop(self._admin, self.database)
        finally:
            self.database = None
            if self._admin is not None:
                self._admin.close()
                self._admin = None
            if self._admin_engine is not None:
                self._admin_engine.dispose()
                self._admin_engine = None

    @staticmethod
    def _drop(admin: Connection, name: str) -> None:
        admin.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")

    @classmethod
    def reap_databases(cls, admin: Connection, me: int, user: str) -> list[str]:
        """Drop the databases of runs that are gone; return their names.

        Only databases with the owner view, made by this same user, whose
        named lock nobody holds (the server frees it when the run's admin
        connection ends) and whose recorded connection is not one of this
        user's live ones (a run of a version without the lock). A database
        that names this very connection is left from before a server restart
        (ids start again at 1).
        """
        alive = set(admin.execute(text("SELECT id FROM information_schema.processlist")).scalars())
        candidates = admin.execute(text(
            "SELECT table_schema FROM information_schema.views "
            "WHERE table_name = :view AND table_schema LIKE :pattern"
        ), {"view": OWNER_VIEW, "pattern": RUN_NAMES_LIKE}).scalars().all()
        dropped = []
        for name in candidates:
            try:
                owner, owner_user = admin.execute(
                    text(f"SELECT owner_connection, owner_user FROM `{name}`.`{OWNER_VIEW}`")
                ).one()
            except DBAPIError:
                continue  # not readable, so not ours to judge
            if owner_user != user or (owner in alive and owner != me):
                continue
            if not admin.execute(text("SELECT IS_FREE_LOCK(:name)"), {"name": name}).scalar():
                continue  # its run's connection holds the lock: alive, on whatever host
            cls._drop(admin, name)
            dropped.append(name)
        return dropped

    # -- the run's connection ------------------------------------------------
    def create_engine(self, url: URL, *, run: bool = False, **kwargs: Any) -> Engine:
        engine = super().create_engine(url, run=run, **kwargs)
        if run and self.is_async:
            self._server_listener(engine)

            @event.listens_for(engine, "connect")
            def _thread_id(dbapi_connection: Any, rec: Any) -> None:
                dbapi_connection._sqltx_thread_id = int(dbapi_connection.sqltx_raw.server_thread_id[0])
        return engine

    def _server_listener(self, engine: Engine) -> None:
        @event.listens_for(engine, "first_connect")
        def _server(dbapi_connection: Any, rec: Any) -> None:
            # Which server decides the timeout settings and the error texts.
            raw = dbapi_connection.sqltx_raw if isinstance(dbapi_connection, AsyncRunConnection) else dbapi_connection
            self.mariadb = "mariadb" in str(raw.get_server_info()).lower()
            dbapi_connection._sqltx_server = "MariaDB" if self.mariadb else "MySQL"

    def install(self, engine: Engine) -> None:
        connection_cls, cursor_cls = _classes(self.driver)

        @event.listens_for(engine, "do_connect")
        def _connect(dialect: Any, rec: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
            cparams["cursorclass"] = cursor_cls
            return connection_cls(*cargs, **cparams)

        @event.listens_for(engine, "connect")
        def _thread_id(dbapi_connection: Any, rec: Any) -> None:
            # For KILL QUERY from another thread, which mysqlclient does not
            # let ask the connection while a statement runs.
            dbapi_connection._sqltx_thread_id = int(dbapi_connection.thread_id())

        self._server_listener(engine)
        remember_isolation_level(engine)

    def other_session_sql(self, lock_timeout_ms: int) -> list[str]:
        seconds = max(1, -(-lock_timeout_ms // 1000))  # whole seconds, rounded up
        return [f"SET SESSION innodb_lock_wait_timeout = {seconds}", f"SET SESSION lock_wait_timeout = {seconds}"]

    def cancel(self, dbapi_connection: Any) -> None:
        # The protocol has no cancel request: KILL QUERY from a connection of its own.
        engine = unwatched(self.create_engine(self.url, side=True, poolclass=NullPool))
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f"KILL QUERY {int(dbapi_connection._sqltx_thread_id)}")
        finally:
            engine.dispose()

    def check_tables(self, tables: list[Any]) -> None:
        named = sorted(t.fullname for t in tables if t.schema)
        if named:
            raise SetupError(
                "creating the schema (metadata)",
                f"tables in named schemas ({', '.join(named)}) would be created, committed, in databases "
                f"other than the run's own; on {self.display_name} only tables without a schema can be isolated",
            )

    def begin_sql(self) -> list[str]:
        # Explicit, so that the server's "in transaction" flag is set from the
        # start and a commit behind the run's back shows.
        return ["START TRANSACTION"]

    def run_setup_sql(self, *, lock_timeout_ms: int, statement_timeout_ms: int) -> list[str]:
        # Row locks (InnoDB) and metadata locks (another run's DDL).
        statements = self.other_session_sql(lock_timeout_ms) if lock_timeout_ms else []
        if self.mariadb:
            statements.append(f"SET SESSION max_statement_time = {statement_timeout_ms / 1000:.3f}")
        else:  # MySQL's limit applies to SELECT only
            statements.append(f"SET SESSION max_execution_time = {int(statement_timeout_ms)}")
        return statements

    def private_namespace_sql(self, name: str, schemas: Sequence[str] = ()) -> list[str]:
        if self.create_database:
            return []  # every worker makes a database of its own
        raise SetupError(
            "running the tests in parallel (nose2 -N)",
            f"parallel runs on {self.display_name} need a database per worker: remove "
            "create-database = false from [sqltx], or run without -N",
        )

    def work_committed(self, statement: str | None, dropped: tuple[str, ...]) -> bool:
        # The schema is committed here whatever happened, so ``dropped`` says
        # nothing: assume the worst unless the statement was a ROLLBACK.
        return statement is None or not rolls_back(statement)

    def socket_fd(self, dbapi_connection: Any) -> int | None:
        if isinstance(dbapi_connection, AsyncRunConnection):
            writer = getattr(dbapi_connection.sqltx_raw, "_writer", None)  # aiomysql, asyncmy: a stream
            sock = writer.transport.get_extra_info("socket") if writer is not None else None
            return sock.fileno() if sock is not None else None
        sock = getattr(dbapi_connection, "_sock", None)  # PyMySQL has no fileno()
        return sock.fileno() if sock is not None else super().socket_fd(dbapi_connection)

    def server_version(self, dbapi_connection: Any) -> str:
        if isinstance(dbapi_connection, AsyncRunConnection):
            dbapi_connection = dbapi_connection.sqltx_raw
        info = str(dbapi_connection.get_server_info())
        match = re.search(r"(\d+\.\d+\.\d+)-MariaDB", info)
        if match:
            return f"MariaDB {match.group(1)}"
        return f"MySQL {info.split('-')[0]}"

    def is_lock_timeout(self, exc: BaseException) -> bool:
        return _error_code(exc) == _LOCK_WAIT_TIMEOUT

    def explain(self, exc: BaseException, *, lock_timeout_ms: int, statement_timeout_ms: int) -> str | None:
        code = _error_code(exc)
        if code == _LOCK_WAIT_TIMEOUT:
            return (
                f"nose2-sqltx: this statement waited longer than lock-timeout ({lock_timeout_ms} ms, "
                "rounded up to whole seconds) for a lock held by another connection. Work done outside "
                "the test transaction (a second engine, a thread with its own connection) cannot see or "
                "release the test's locks; route it through the test's engine, or raise lock-timeout under [sqltx]"
            )
        if code in _STATEMENT_TIMEOUTS:
            return (
                f"nose2-sqltx: this statement ran longer than statement-timeout ({statement_timeout_ms} ms); "
                "raise statement-timeout under [sqltx] if that is expected (0 turns it off)"
            )
        return None


@register("mariadb")
class MariaDB(MySQL):
    """MariaDB named as such in the URL (``mariadb+pymysql://``)."""

    display_name = "MariaDB"


def _quote(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def _error_code(exc: BaseException) -> int | None:
    """The server's error number in ``exc``'s chain (SQLAlchemy wrappers, causes)."""
    for cause in exception_chain(exc):
        args = getattr(cause, "args", ())
        if type(cause).__module__.split(".")[0] in ("pymysql", "MySQLdb", "asyncmy") and args \
                and isinstance(args[0], int):
            return int(args[0])
    return None
