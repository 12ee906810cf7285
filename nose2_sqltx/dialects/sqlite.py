"""SQLite: transactional DDL, so the whole run is one rolled-back transaction.

Python's sqlite3 driver, in its default (legacy) transaction mode, begins
transactions itself and commits before some statements; savepoints then do
not nest inside the run's transaction, and DDL or data from released
savepoints escapes the final rollback. The run's connection therefore has
the driver's transaction handling off (``isolation_level=None``, SQLAlchemy's
documented workaround) and the run's ``BEGIN`` is emitted here.

The app's own ``BEGIN`` (SQLAlchemy's recipe for savepoints on pysqlite)
starts nothing inside the test transaction and fails where SQLite's would.
Deferred foreign keys, which SQLite checks only at a real COMMIT, are
checked at each app commit (:class:`ForeignKeyCheck`).

``sqlite://`` (in memory) works because the run has exactly one connection
for its whole length; a file database works too, and a file the run had to
create is removed again at the end.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import URL

from ..errors import SetupError
from ..savepoints import IDLE, INTRANS, CommitCheck, SavepointConnection, guarded_setting, reported
from .async_drivers import AsyncDriver, AsyncRunConnection
from .base import OWN_CLASS, Backend, register, remember_isolation_level

__unittest = True

#: the app's own BEGIN (not a statement that starts with the word)
_BEGIN = re.compile(r"\s*BEGIN(\s+(DEFERRED|IMMEDIATE|EXCLUSIVE))?(\s+TRANSACTION)?\s*;?\s*\Z", re.IGNORECASE)
#: a foreign key that SQLite checks only at COMMIT
_DEFERRED = re.compile(r"\bINITIALLY\s+DEFERRED\b", re.IGNORECASE)


def _nested_begin() -> Exception:
    import sqlite3

    return sqlite3.OperationalError("cannot start a transaction within a transaction")


def split_script(script: str) -> list[str]:
    """The statements of an SQL script, as SQLite itself would find them."""
    import sqlite3

    statements, buffer = [], ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \t\r\n;"):
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip(" \t\r\n;"):
        statements.append(buffer.strip())
    return statements


@cache
def _sqlite_classes() -> tuple[Any, Any]:
    import sqlite3

    class Cursor(sqlite3.Cursor):
        def execute(self, sql: Any, parameters: Any = ()) -> Any:
            connection: Any = self.connection
            if isinstance(sql, str) and _BEGIN.match(sql) and connection.sqltx_armed and not connection.sqltx_ended:
                connection.sqltx_app_begin(_nested_begin)
                return self
            return reported(connection, sql, lambda: super(Cursor, self).execute(sql, parameters))

        def executemany(self, sql: Any, seq_of_parameters: Any) -> Any:
            return reported(self.connection, sql,
                            lambda: super(Cursor, self).executemany(sql, seq_of_parameters))

        def executescript(self, sql_script: Any) -> Any:
            # sqlite3 commits before running a script (Python < 3.12 always):
            # run its statements one by one inside the test transaction instead.
            if not getattr(self.connection, "sqltx_armed", False):
                return super().executescript(sql_script)
            for statement in split_script(sql_script):
                self.execute(statement)
            return self

    # The driver's own descriptors, which the properties below wrap.
    real_isolation_level: Any = sqlite3.Connection.__dict__["isolation_level"]
    real_autocommit: Any = sqlite3.Connection.__dict__.get("autocommit")  # Python 3.12+

    class Connection(SavepointConnection, sqlite3.Connection):
        def cursor(self, factory: Any = None) -> Any:
            self._sqltx_dirty = True  # a cursor of another class bypasses ours
            return super().cursor(factory or Cursor)

        # The C versions of these bypass the Python cursor methods above.
        def execute(self, sql: Any, parameters: Any = ()) -> Any:
            return self.cursor().execute(sql, parameters)

        def executemany(self, sql: Any, seq_of_parameters: Any) -> Any:
            return self.cursor().executemany(sql, seq_of_parameters)

        def executescript(self, sql_script: Any) -> Any:
            return self.cursor().executescript(sql_script)

        def _sqltx_exec(self, sql: str) -> None:
            cur = sqlite3.Cursor(self)  # plain: not reported
            try:
                cur.execute(sql)
            finally:
                cur.close()

        _sqltx_one_statement_per_call = True  # sqlite3 refuses several

        def _sqltx_status(self) -> int:
            # SQLite has no "failed transaction" state: a failed statement is
            # undone on its own, and the few errors that roll back the whole
            # transaction leave it idle, which is reported as the run's end.
            return INTRANS if self.in_transaction else IDLE

        def _sqltx_real_commit(self) -> None:
            sqlite3.Connection.commit(self)

        def _sqltx_real_rollback(self) -> None:
            sqlite3.Connection.rollback(self)

        def _sqltx_real_close(self) -> None:
            sqlite3.Connection.close(self)

        # Setting either of these commits an open transaction (sqlite3 does it
        # in C): while armed, remember the value and emulate its autocommit.
        isolation_level = guarded_setting(real_isolation_level, "isolation_level", lambda value: value is None)
        if real_autocommit is not None:  # Python 3.12+
            autocommit = guarded_setting(real_autocommit, "autocommit_attr", lambda value: value is True)

    return Connection, Cursor


class ForeignKeyCheck(CommitCheck):
    """SQLite's deferred foreign keys, which it checks only when the real
    transaction commits: at each app commit, the violations that ``query``
    (``PRAGMA foreign_key_check`` on the tables that have such keys) finds,
    beyond the ``known`` ones the database held before the run, fail the
    commit as SQLite's COMMIT would. As there, the transaction stays open
    with its work until the app rolls back."""

    def __init__(self, query: str, known: frozenset[tuple[Any, ...]]) -> None:
        self.query = query
        self.known = known

    def run(self, connection: SavepointConnection) -> None:
        import sqlite3

        cursor = sqlite3.Cursor(connection)  # type: ignore[arg-type]  # plain: not reported
        try:
            found = cursor.execute(self.query).fetchall()
        finally:
            cursor.close()
        if any(tuple(row) not in self.known for row in found):
            raise sqlite3.IntegrityError("FOREIGN KEY constraint failed")

    def failed(self, connection: SavepointConnection) -> None:
        pass  # SQLite keeps the work of a transaction whose COMMIT failed


@register("sqlite")
class SQLite(Backend):
    """SQLite through the standard library's sqlite3 (``sqlite://`` in memory,
    ``sqlite:///path/to/file.db``), or async through aiosqlite
    (``sqlite+aiosqlite://``)."""

    display_name = "SQLite"
    drivers: ClassVar[dict[str, str]] = {"pysqlite": "nothing (it is Python's own sqlite3 module)",
                                         "aiosqlite": "aiosqlite"}
    # SQLite has no failed-transaction state (see the sync class's _sqltx_status)
    async_drivers: ClassVar[Mapping[str, AsyncDriver]] = {"aiosqlite": AsyncDriver(
        status=lambda conn: INTRANS if conn.sqltx_raw.in_transaction else IDLE, one_statement_per_call=True,
        loop_bound=False, app_begin=_BEGIN, nested_begin_error=_nested_begin, none_level_autocommits=True)}
    worker_namespace = "an in-memory database of its own"
    concurrent_runs_fix = ("a SQLite file has one writer at a time, and a run writes from its start to its end: "
                           "give each concurrent run its own file, or use sqlite:// (in memory)")
    named_databases = False  # a file's name says nothing; its tables do
    own_connect_args: ClassVar[Mapping[str, object]] = {"factory": OWN_CLASS, "isolation_level": None,
                                                         "check_same_thread": False}

    def __init__(self, url: URL, key: str = "dsn", **options: Any) -> None:
        super().__init__(url, key, **options)
        name = url.database or ""
        self.in_memory = name in ("", ":memory:") or "mode=memory" in str(url.query)
        self.path = None if self.in_memory else os.path.abspath(name)
        self._made_file = False

    @property
    def database_label(self) -> str | None:
        return None if self.path is None else os.path.basename(self.path)

    @property
    def supports_real_commits(self) -> bool:
        return not self.in_memory  # an in-memory database lives in the run's connection only

    def prepare(self) -> URL:
        if self.path is not None:
            self._made_file = not os.path.exists(self.path)
        return self.url

    def release(self) -> None:
        # A file SQLite made for this run only holds nothing but the run's
        # (rolled back) work: leave the directory as the run found it.
        if self._made_file and self.path is not None:
            self._made_file = False
            for path in (self.path, self.path + "-journal", self.path + "-wal", self.path + "-shm"):
                try:
                    os.remove(path)
                except FileNotFoundError:
                    pass

    def install(self, engine: Engine) -> None:
        connection_cls, _ = _sqlite_classes()

        @event.listens_for(engine, "do_connect")
        def _connect(dialect: Any, rec: Any, cargs: Any, cparams: dict[str, Any]) -> None:
            cparams["factory"] = connection_cls
            cparams["isolation_level"] = None  # the driver's own BEGIN/COMMIT off
            # One connection for the whole run, also used by threads the test
            # starts (an app server in a thread): sqlite3 serializes the calls.
            cparams["check_same_thread"] = False

        remember_isolation_level(engine)

    def async_connect_params(self, cparams: dict[str, Any]) -> None:
        cparams["isolation_level"] = None  # the driver's own BEGIN/COMMIT off

    def begin_sql(self) -> list[str]:
        return ["BEGIN"]

    def other_session_sql(self, lock_timeout_ms: int) -> list[str]:
        return [f"PRAGMA busy_timeout = {int(lock_timeout_ms)}"]

    def shares_locks_with(self, url: URL) -> bool:
        name = url.database or ""
        return url.get_backend_name() == "sqlite" and self.path is not None and \
            name not in ("", ":memory:") and os.path.abspath(name) == self.path

    def cancel(self, dbapi_connection: Any) -> None:
        if isinstance(dbapi_connection, AsyncRunConnection):
            dbapi_connection = dbapi_connection.sqltx_raw._conn  # aiosqlite's sqlite3 connection
        dbapi_connection.interrupt()  # sqlite3 allows it from any thread

    def commit_check(self, conn: Connection) -> CommitCheck | None:
        if not conn.exec_driver_sql("PRAGMA foreign_keys").scalar():
            return None  # not enforced on this connection, nor on the app's set up the same way
        deferred = [name for name, sql in conn.exec_driver_sql(
                        "SELECT name, sql FROM sqlite_master WHERE type = 'table'")
                    if sql and _DEFERRED.search(sql)]
        if not deferred:
            return None
        query = " UNION ALL ".join(
            "SELECT \"table\", rowid, parent, fkid FROM pragma_foreign_key_check('{}')".format(name.replace("'", "''"))
            for name in deferred)
        return ForeignKeyCheck(query, frozenset(tuple(row) for row in conn.exec_driver_sql(query)))

    def run_setup_sql(self, *, lock_timeout_ms: int, statement_timeout_ms: int) -> list[str]:
        # How long to wait for another connection's lock on a file database.
        # statement-timeout has no SQLite counterpart that keeps the
        # transaction: interrupting a write rolls the whole transaction back.
        return self.other_session_sql(lock_timeout_ms)

    def private_namespace_sql(self, name: str, schemas: Sequence[str] = ()) -> list[str]:
        if self.in_memory:
            return []  # every worker process has its own in-memory database
        raise SetupError(
            "running the tests in parallel (nose2 -N)",
            "parallel runs on a SQLite file would all write to one file and wait for each other's "
            "lock: use sqlite:// (in memory, one database per worker) or run without -N",
        )

    def server_version(self, dbapi_connection: Any) -> str:
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"

    def is_lock_timeout(self, exc: BaseException) -> bool:
        return "database is locked" in str(getattr(exc, "orig", None) or exc)

    def explain(self, exc: BaseException, *, lock_timeout_ms: int, statement_timeout_ms: int) -> str | None:
        if self.is_lock_timeout(exc):
            return (
                f"nose2-sqltx: SQLite waited longer than lock-timeout ({lock_timeout_ms} ms) for another "
                "connection's lock on the database file. The test transaction holds the file's write "
                "lock for the whole run: route other work through the test's engine, or raise "
                "lock-timeout under [sqltx]"
            )
        return None
