"""PostgreSQL: transactional DDL, so the whole run is one rolled-back transaction.

Savepoint connection classes for psycopg2 and psycopg 3. Each is a real
subclass of the driver's connection (psycopg2's C code type-checks the
connection in ``register_type``), with a cursor class that reports every
statement to the :class:`~nose2_sqltx.savepoints.SavepointConnection`.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, event, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import DropSchema

from ..errors import SetupError
from ..messages import exception_chain
from ..savepoints import IDLE, CommitCheck, SavepointConnection, StatementCheck, guarded_setting, reported
from .async_drivers import AsyncDriver, AsyncRunConnection
from .base import OWN_CLASS, RUN_NAME_LENGTH, RUN_NAME_PREFIX, RUN_NAMES_LIKE, Backend, register

__unittest = True

# Command statuses after which a rolled-back scope can leave prepared statements
# stale (psycopg 3's own list, plus CREATE).
_SCHEMA_CHANGE = re.compile(r"^(?:CREATE|DROP|ALTER|TRUNCATE|ROLLBACK|DISCARD ALL|DEALLOCATE ALL)\b")
#: a schema name the run may create and drop (it is pasted into DDL)
_PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: PostgreSQL's longest identifier (NAMEDATALEN - 1)
_MAX_NAME = 63


def stales_prepared_statements(command_status: str) -> bool:
    """Whether a statement with this command status can leave psycopg 3's
    prepared statements stale once its scope is rolled back."""
    return bool(_SCHEMA_CHANGE.match(command_status))

#: shown in pg_stat_activity unless the URL names its own application_name
APPLICATION_NAME = "nose2-sqltx"
_LOCK_NOT_AVAILABLE = "55P03"
#: every sequence of the database and where it stands (NULL: never used)
_SEQUENCES = (
    "SELECT c.oid::regclass::text, pg_sequence_last_value(c.oid) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'S' "
    "AND n.nspname <> 'information_schema' AND NOT starts_with(n.nspname, 'pg_')"
)
#: the savepoint an app's commit checks deferred constraints in
_CHECK = "sqltx_check"
#: the comment on a run's own schema: only schemas with it are ever reaped
RUN_SCHEMA_COMMENT = "nose2-sqltx run"
#: first key of the session advisory lock a run holds for as long as its
#: connection lives (the second: from the schema's name); a lock nobody
#: holds proves, on the server's word, that the run is gone
_LOCK_CLASS = 0x73716C74  # "sqlt"
_QUERY_CANCELED = "57014"
_OUT_OF_MEMORY = "53200"  # out_of_memory: "out of shared memory" when the lock table is full
#: the locks the run holds, and the settings that size the server's lock table
_LOCK_ROOM = ("SELECT (SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid()), "
              "current_setting('max_locks_per_transaction')::int, current_setting('max_connections')::int, "
              "current_setting('max_prepared_transactions')::int")


def run_lock_key(name: str) -> tuple[int, int]:
    """The advisory lock that says run schema ``name``'s run is alive (the
    run's own schema, or one of its stand-ins for a named schema)."""
    return _LOCK_CLASS, zlib.crc32(name[:RUN_NAME_LENGTH].encode()) - 2**31


def private_schema(run: str, schema: str) -> str:
    """The run ``run``'s stand-in for the app's schema ``schema``: a plain name
    within PostgreSQL's 63 characters, ``<run>_<schema>`` where it can be."""
    plain = re.sub(r"[^a-z0-9_]", "_", schema.lower())
    name = f"{run}_{plain}"
    if plain != schema or len(name) > _MAX_NAME:
        # two schemas that differ in case or punctuation stay apart
        name = f"{run}_{plain[:_MAX_NAME - len(run) - 10]}_{zlib.crc32(schema.encode()):08x}"
    return name


@cache
def _psycopg2_classes() -> tuple[Any, Any]:
    import psycopg2.extensions as ext

    class Cursor(ext.cursor):
        def execute(self, query: Any, vars: Any = None) -> Any:
            return reported(self.connection, query, lambda: super(Cursor, self).execute(query, vars))

        def executemany(self, query: Any, vars_list: Any) -> Any:
            return reported(self.connection, query, lambda: super(Cursor, self).executemany(query, vars_list))

    class Connection(SavepointConnection, ext.connection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.cursor_factory = Cursor

        def cursor(self, *args: Any, **kwargs: Any) -> Any:
            self._sqltx_dirty = True  # a cursor of another class bypasses ours
            return super().cursor(*args, **kwargs)

        def _sqltx_exec(self, sql: str) -> None:
            with ext.cursor(self) as cur:
                cur.execute(sql)

        def _sqltx_real_commit(self) -> None:
            ext.connection.commit(self)

        def _sqltx_real_rollback(self) -> None:
            ext.connection.rollback(self)

        def _sqltx_real_close(self) -> None:
            ext.connection.close(self)

        def _sqltx_alive(self) -> bool:
            return not self.closed

        # psycopg2's own versions refuse inside a transaction, or roll it back.
        autocommit = guarded_setting(ext.connection.autocommit, "autocommit")
        readonly = guarded_setting(ext.connection.readonly, "readonly")
        deferrable = guarded_setting(ext.connection.deferrable, "deferrable")

        @property
        def isolation_level(self) -> Any:
            real = ext.connection.isolation_level.__get__(self)
            return self.sqltx_remembered("isolation_level", real) if self.sqltx_armed else real

        def set_isolation_level(self, level: int) -> None:
            if not self.sqltx_armed:
                ext.connection.set_isolation_level(self, level)
                return
            self.sqltx_remember("autocommit", level == ext.ISOLATION_LEVEL_AUTOCOMMIT)
            self.sqltx_remember("isolation_level", level)

        def set_session(self, isolation_level: Any = None, readonly: Any = None,
                        deferrable: Any = None, autocommit: Any = None) -> None:
            if not self.sqltx_armed:
                ext.connection.set_session(self, isolation_level, readonly, deferrable, autocommit)
                return
            for name, value in (("isolation_level", isolation_level), ("readonly", readonly),
                                ("deferrable", deferrable), ("autocommit", autocommit)):
                if value is not None:
                    self.sqltx_remember(name, value)
            return None

    return Connection, Cursor


@cache
def _psycopg_classes() -> tuple[Any, Any]:
    import psycopg
    from psycopg.pq import ExecStatus

    DONE = (ExecStatus.COMMAND_OK, ExecStatus.TUPLES_OK)  # a statement, or a query (a sequence reset)
    base: Any = psycopg.Connection

    class Cursor(psycopg.Cursor):
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            try:
                return reported(self.connection, query, lambda: super(Cursor, self).execute(query, params, **kwargs))
            finally:
                if stales_prepared_statements(self.statusmessage or ""):
                    conn: Any = self.connection
                    conn._sqltx_schema_changed = True

        def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
            return reported(self.connection, query,
                             lambda: super(Cursor, self).executemany(query, params_seq, **kwargs))

    class Connection(SavepointConnection, base):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.cursor_factory = Cursor

        def cursor(self, *args: Any, **kwargs: Any) -> Any:
            self._sqltx_dirty = True
            return super().cursor(*args, **kwargs)

        _sqltx_schema_changed = False

        def _sqltx_exec(self, sql: str) -> None:
            # psycopg 3 drops every prepared statement when it sees a ROLLBACK
            # command status, because rolled-back DDL can leave them stale.
            # Our savepoint rollbacks would trigger that after every test (it
            # cost about a quarter of a test's time), so they go to libpq
            # directly, past the cursors and psycopg's bookkeeping alike,
            # unless the scope changed the schema: then psycopg's caution is
            # right and the statement takes psycopg's own path.
            if self._sqltx_schema_changed or self.pgconn.transaction_status == IDLE:
                self._sqltx_schema_changed = False
                with psycopg.Cursor(self) as cur:  # plain: not reported
                    cur.execute(sql)
                return
            result = self.pgconn.exec_(sql.encode())
            if result.status not in DONE:
                raise psycopg.errors.error_from_result(result, encoding=self.info.encoding)

        def _sqltx_real_commit(self) -> None:
            base.commit(self)

        def _sqltx_real_rollback(self) -> None:
            base.rollback(self)

        def _sqltx_real_close(self) -> None:
            base.close(self)

        def _sqltx_alive(self) -> bool:
            return not (self.closed or self.broken)

        autocommit = guarded_setting(base.autocommit, "autocommit")
        isolation_level = guarded_setting(base.isolation_level, "isolation_level")
        read_only = guarded_setting(base.read_only, "read_only")
        deferrable = guarded_setting(base.deferrable, "deferrable")

        def set_autocommit(self, value: bool) -> None:
            self.autocommit = value

        def set_isolation_level(self, value: Any) -> None:
            self.isolation_level = value

        def set_read_only(self, value: Any) -> None:
            self.read_only = value

        def set_deferrable(self, value: Any) -> None:
            self.deferrable = value

    return Connection, Cursor


def _asyncpg_fileno(raw: Any) -> int | None:
    sock = raw._transport.get_extra_info("socket") if raw._transport is not None else None
    return sock.fileno() if sock is not None else None


_ASYNC_DRIVERS = {
    # asyncpg cannot tell a failed transaction from a good one: the wrapper follows it
    "asyncpg": AsyncDriver(alive=lambda raw: not raw.is_closed(), execute=lambda raw, sql: raw.execute(sql),
                           fileno=_asyncpg_fileno),
    "psycopg_async": AsyncDriver(status=lambda conn: int(conn.sqltx_raw.info.transaction_status), loop_bound=False,
                                 alive=lambda raw: not (raw.closed or raw.broken),
                                 execute=lambda raw, sql: raw.execute(sql), fileno=lambda raw: raw.pgconn.socket),
}


@register("postgresql")
class PostgreSQL(Backend):
    """PostgreSQL through psycopg2 (``postgresql://``, ``postgresql+psycopg2://``),
    psycopg 3 (``postgresql+psycopg://``), and async: asyncpg
    (``postgresql+asyncpg://``) or psycopg 3's async connection
    (``postgresql+psycopg_async://``)."""

    display_name = "PostgreSQL"
    #: driver name in the URL -> the package that provides it
    drivers: ClassVar[dict[str, str]] = {"psycopg2": "psycopg2-binary", "psycopg": "'psycopg[binary]'",
                                         "asyncpg": "asyncpg", "psycopg_async": "'psycopg[binary]'"}
    async_drivers: ClassVar[Mapping[str, AsyncDriver]] = _ASYNC_DRIVERS
    own_connect_args: ClassVar[Mapping[str, object]] = {"connection_factory": OWN_CLASS, "cursor_factory": OWN_CLASS}
    private_runs = True
    caches_schema = True
    concurrent_runs_fix = ("each run keeps its tables in schemas of its own, but tables in a named schema that "
                           "neither the metadata names nor the schemas key lists (with alembic, list them there) "
                           "are made where their names say by every run")

    def install(self, engine: Engine) -> None:
        if self.driver == "psycopg2":
            connection_cls, _ = _psycopg2_classes()

            @event.listens_for(engine, "do_connect")
            def _connect2(dialect: Any, rec: Any, cargs: Any, cparams: dict[str, Any]) -> None:
                cparams.setdefault("application_name", APPLICATION_NAME)
                cparams["connection_factory"] = connection_cls
        else:
            connection_cls, _ = _psycopg_classes()

            @event.listens_for(engine, "do_connect")
            def _connect3(dialect: Any, rec: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
                cparams.setdefault("application_name", APPLICATION_NAME)
                return connection_cls.connect(*cargs, **cparams)

    def async_connect_params(self, cparams: dict[str, Any]) -> None:
        if self.driver == "asyncpg":
            # asyncpg takes server settings in a dict of their own (SQLAlchemy passes a
            # URL's ?application_name= on as an argument asyncpg would refuse)
            settings = cparams.setdefault("server_settings", {})
            settings.setdefault("application_name", cparams.pop("application_name", APPLICATION_NAME))
        else:
            cparams.setdefault("application_name", APPLICATION_NAME)

    def socket_fd(self, dbapi_connection: Any) -> int | None:
        if isinstance(dbapi_connection, AsyncRunConnection):
            return self.async_drivers[self.driver].fileno(dbapi_connection.sqltx_raw)
        return super().socket_fd(dbapi_connection)

    def blocked_by_sql(self) -> str | None:
        # waitstart: when the wait began (PostgreSQL 14+); pg_blocking_pids
        # only for the waits, which are few.
        # (named binds, typed: every driver's paramstyle, asyncpg's too)
        return ("SELECT DISTINCT l.pid FROM pg_locks l WHERE NOT l.granted AND l.pid <> CAST(:run AS integer) "
                "AND l.waitstart < clock_timestamp() - CAST(:ms AS integer) * interval '1 millisecond' "
                "AND CAST(:run AS integer) = ANY(pg_blocking_pids(l.pid))")

    def tables_size(self, dbapi_connection: Any, names: Sequence[str]) -> int | None:
        sql = ("SELECT coalesce(sum(pg_total_relation_size(to_regclass(quote_ident(n)))), 0)::bigint "
               "FROM unnest(%s::text[]) AS n")
        if isinstance(dbapi_connection, AsyncRunConnection):
            names_sql = "ARRAY[" + ", ".join("'" + n.replace("'", "''") + "'" for n in names) + "]"
            return int(dbapi_connection.sqltx_scalar(sql % (names_sql if names else "'{}'")) or 0)
        # A plain cursor of the driver's: not the app's statement, not in any query log.
        if self.driver == "psycopg2":
            import psycopg2.extensions

            cursor = psycopg2.extensions.cursor(dbapi_connection)
        else:
            import psycopg

            cursor = psycopg.Cursor(dbapi_connection)
        try:
            cursor.execute(sql, (list(names),))
            row = cursor.fetchone()
        finally:
            cursor.close()
        return int(row[0]) if row else 0

    def backend_pid(self, dbapi_connection: Any) -> int | None:
        # the run's connection, or any other's: SQLAlchemy's async adapters hold the driver's own
        raw = dbapi_connection.sqltx_raw if isinstance(dbapi_connection, AsyncRunConnection) \
            else getattr(dbapi_connection, "driver_connection", dbapi_connection)
        get_pid = getattr(raw, "get_server_pid", None)  # asyncpg
        return int(get_pid() if get_pid is not None else raw.info.backend_pid)

    def is_cancel(self, exc: BaseException) -> bool:
        return _sqlstate(exc)[0] == _QUERY_CANCELED

    def cancel(self, dbapi_connection: Any) -> None:
        if isinstance(dbapi_connection, AsyncRunConnection):
            # the driver's task cancelled on the run's loop: the driver sends the cancel request
            dbapi_connection.sqltx_cancel()
            return
        # libpq's cancel request: its own short connection, safe from any thread.
        dbapi_connection.cancel()

    def run_setup_sql(self, *, lock_timeout_ms: int, statement_timeout_ms: int) -> list[str]:
        # Plain SET inside the run's transaction: reverted with it at the end.
        return [
            f"SET lock_timeout = {int(lock_timeout_ms)}",
            f"SET statement_timeout = {int(statement_timeout_ms)}",
        ]

    def private_schemas(self, name: str, schemas: Sequence[str]) -> dict[str, str]:
        return {schema: private_schema(name, schema) for schema in schemas}

    def private_namespace_sql(self, name: str, schemas: Sequence[str] = ()) -> list[str]:
        # Schemas created in the run's uncommitted transaction: other runs
        # cannot see them, and tables of the same name in different schemas
        # do not contend on the catalog, so runs never wait for each other.
        # They go with the rollback at the end; if code under test commits
        # them, the comment and the lock let a later run tell they are orphans.
        for schema in (name, *schemas):
            if not _PLAIN_NAME.fullmatch(schema):
                raise SetupError("giving the run a schema of its own",
                                 f"{schema!r} is not a plain schema name (lower-case letters, digits and _)")
        lock = run_lock_key(name)
        made = [sql for schema in (name, *schemas)
                for sql in (f"CREATE SCHEMA {schema}", f"COMMENT ON SCHEMA {schema} IS '{RUN_SCHEMA_COMMENT}'")]
        return [f"SELECT pg_try_advisory_lock({lock[0]}, {lock[1]})", *made,
                # In front of the connection's own path: extensions and types
                # the database keeps in public (or the user's schema) stay
                # reachable. The stand-ins for named schemas stay out of it:
                # an unqualified name finds in them no more than in production.
                f"SELECT set_config('search_path', '{name}, ' || current_setting('search_path'), false)"]

    def check_lock_room(self, conn: Connection, runs: int) -> int:
        held, per, connections, prepared = conn.exec_driver_sql(_LOCK_ROOM).one()
        slots = connections + prepared
        room, need = per * slots, held * runs
        if need <= room:
            return int(held)
        workers = f", and each of the {runs} parallel workers holds as many: {need} in all" if runs > 1 else ""
        raise SetupError(
            "checking the server's lock table",
            f"this run holds {held} locks until it ends (one per table, index and sequence it made){workers}; "
            f"the server's lock table has room for {room} (max_locks_per_transaction {per} x (max_connections "
            f"{connections} + max_prepared_transactions {prepared})), shared by every connection, so the run would "
            f"fail with \"out of shared memory\". Set max_locks_per_transaction to at least "
            f"{-(-need * 5 // (4 * slots))} on the server (postgresql.conf, then restart it)"
            + (", or run fewer workers" if runs > 1 else ""),
        )

    def explain_setup_failure(self, exc: BaseException) -> str | None:
        if _sqlstate(exc)[0] != _OUT_OF_MEMORY:
            return None
        return ("the server's lock table is full: a run holds a lock on every table, index and sequence it made "
                "until it ends, and every run and worker on the server shares max_locks_per_transaction x "
                "(max_connections + max_prepared_transactions) of them; raise max_locks_per_transaction on the "
                "server (postgresql.conf, then restart it), or run fewer at once")

    def reap(self, conn: Connection) -> list[str]:
        names = conn.execute(text(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE :pattern "
            "AND obj_description(oid, 'pg_namespace') = :comment ORDER BY nspname"
        ), {"pattern": RUN_NAMES_LIKE, "comment": RUN_SCHEMA_COMMENT}).scalars().all()
        conn.commit()
        runs: dict[str, list[str]] = {}
        for name in names:
            if _PLAIN_NAME.fullmatch(name):
                runs.setdefault(name[:RUN_NAME_LENGTH], []).append(name)
        dropped = []
        for run, schemas in runs.items():
            key = run_lock_key(run)
            # Taken: nobody else holds it, so the run that made the schemas is gone.
            if not conn.execute(text("SELECT pg_try_advisory_lock(:a, :b)"), {"a": key[0], "b": key[1]}).scalar():
                conn.commit()
                continue
            try:
                for name in schemas:
                    try:
                        conn.execute(DropSchema(name, cascade=True, if_exists=True))
                        conn.commit()
                        dropped.append(name)
                    except DBAPIError:
                        conn.rollback()  # not ours to drop (another user's): left alone
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), {"a": key[0], "b": key[1]})
                conn.commit()
        return dropped

    def drop_private_namespace(self, conn: Connection, name: str) -> tuple[str, ...]:
        # the run's schema and its stand-ins for named schemas (name_<schema>)
        schemas = [s for s in inspect(conn).get_schema_names() if s == name or s.startswith(name + "_")]
        for schema in schemas:
            conn.execute(DropSchema(schema, cascade=True))
        conn.commit()
        return tuple(f"schema {schema}" for schema in schemas)

    def cursor_setup(self, dialect: Any) -> Callable[[Any], None] | None:
        # psycopg 3 takes json_serializer/json_deserializer as adapters given to
        # the connection when it is made; a cursor can carry its own.
        dumps, loads = getattr(dialect, "_json_serializer", None), getattr(dialect, "_json_deserializer", None)
        if dialect.driver != "psycopg" or not (dumps or loads):
            return None
        from psycopg.types.json import set_json_dumps, set_json_loads

        def setup(cursor: Any) -> None:
            if dumps:
                set_json_dumps(dumps, cursor)
            if loads:
                set_json_loads(loads, cursor)

        return setup

    def sequence_values(self, conn: Connection, *, run_only: bool = False) -> dict[str, int | None]:
        # the run's schemas: its own, first in search_path, and its stand-ins for named schemas
        first = "(current_schemas(false))[1]"
        where = (f" AND (n.nspname = ANY (current_schemas(false)) OR (starts_with(n.nspname, {first} || '_') "
                 f"AND starts_with({first}, '{RUN_NAME_PREFIX}')))" if run_only else "")
        return {name: last for name, last in conn.exec_driver_sql(_SEQUENCES + where).all()}

    def restore_sequences_sql(self, values: dict[str, int | None]) -> str | None:
        if not values:
            return None
        rows = ", ".join(
            "('{}', {}::bigint)".format(name.replace("'", "''"), "NULL" if last is None else int(last))
            for name, last in values.items()
        )
        # setval(start, false): the next nextval() gives the start again, as
        # for a sequence never used. to_regclass: a sequence gone is skipped.
        return (f"SELECT setval(s.seqrelid, coalesce(v.last, s.seqstart), v.last IS NOT NULL) "
                f"FROM (VALUES {rows}) AS v(name, last) JOIN pg_sequence s ON s.seqrelid = to_regclass(v.name) "
                "WHERE pg_sequence_last_value(s.seqrelid) IS DISTINCT FROM v.last")

    def commit_check(self, conn: Connection) -> CommitCheck | None:
        deferrable = conn.exec_driver_sql(
            "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE condeferrable)"
            " OR EXISTS (SELECT 1 FROM pg_trigger WHERE tgdeferrable)"
        ).scalar()
        if not deferrable:
            return None
        # Checked inside a savepoint that is rolled back: the constraints go
        # back to their own modes (DEFERRED stays deferred), and their pending
        # checks stay pending for the real end of the transaction.
        return StatementCheck((f"SAVEPOINT {_CHECK}", "SET CONSTRAINTS ALL IMMEDIATE",
                               f"ROLLBACK TO SAVEPOINT {_CHECK}", f"RELEASE SAVEPOINT {_CHECK}"),
                              recover=(f"ROLLBACK TO SAVEPOINT {_CHECK}", f"RELEASE SAVEPOINT {_CHECK}"))

    def server_version(self, dbapi_connection: Any) -> str:
        if isinstance(dbapi_connection, AsyncRunConnection) and self.driver == "asyncpg":
            version = dbapi_connection.sqltx_raw.get_server_version()
            # asyncpg files PostgreSQL 10+'s "15.4" as major 15, micro 4
            return f"PostgreSQL {version.major}.{version.micro if version.major >= 10 else version.minor}"
        if isinstance(dbapi_connection, AsyncRunConnection):
            dbapi_connection = dbapi_connection.sqltx_raw
        number = int(dbapi_connection.info.server_version)
        return f"PostgreSQL {number // 10000}.{number % 10000}"

    def is_lock_timeout(self, exc: BaseException) -> bool:
        return _sqlstate(exc)[0] == _LOCK_NOT_AVAILABLE

    def explain(self, exc: BaseException, *, lock_timeout_ms: int, statement_timeout_ms: int) -> str | None:
        code, cause = _sqlstate(exc)
        if code == _LOCK_NOT_AVAILABLE:
            return (
                f"nose2-sqltx: this statement waited longer than lock-timeout ({lock_timeout_ms} ms) "
                "for a lock held by another connection. Work done outside the test transaction "
                "(a second engine, a thread with its own connection) cannot see or release the "
                "test's locks; route it through the test's engine, or raise lock-timeout under [sqltx]"
            )
        if code == _QUERY_CANCELED and "statement timeout" in str(cause):
            return (
                f"nose2-sqltx: this statement ran longer than statement-timeout ({statement_timeout_ms} ms); "
                "raise statement-timeout under [sqltx] if that is expected (0 turns it off)"
            )
        return None


def _sqlstate(exc: BaseException) -> tuple[str | None, BaseException | None]:
    """The first SQLSTATE in ``exc``'s chain (SQLAlchemy wrappers, causes), with its exception."""
    for cause in exception_chain(exc):
        code = getattr(cause, "pgcode", None) or getattr(cause, "sqlstate", None)
        if code:
            return code, cause
    return None, None
