"""The backend template: one subclass per database, registered by dialect name."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, create_engine, inspect
from sqlalchemy.engine import URL
from sqlalchemy.pool import AsyncAdaptedQueuePool, Pool, QueuePool

from ..errors import ConfigError, SetupError
from ..messages import mask_url
from ..runloop import RunLoop
from ..savepoints import CommitCheck
from .async_drivers import AsyncDriver, bridge_engine, bridged_pool

__unittest = True

registry: dict[str, type[Backend]] = {}

#: in :attr:`Backend.own_connect_args`: a class of the run's own, which no app value equals
OWN_CLASS = object()

#: schemas (MySQL: databases) that belong to the server, never to an app
SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog", "pg_toast", "performance_schema", "mysql", "sys"})

#: how the name of a run's own namespace (PostgreSQL: a schema; MySQL/MariaDB: a database) starts
RUN_NAME_PREFIX = "sqltx_run_"
#: LIKE pattern of those names (the prefix's "_" taken literally)
RUN_NAMES_LIKE = RUN_NAME_PREFIX.replace("_", "\\_") + "%"


#: how long :func:`new_run_name`'s names are; longer names that start with one
#: belong to that run (its own schemas for the app's named ones)
RUN_NAME_LENGTH = len(RUN_NAME_PREFIX) + 12


def new_run_name() -> str:
    """The name of a new run's own namespace: random, so that runs on other
    hosts and in other containers (whose pids and connection ids repeat)
    never pick the same one."""
    return RUN_NAME_PREFIX + secrets.token_hex(6)


def register(name: str) -> Callable[[type[Backend]], type[Backend]]:
    """Class decorator: make ``cls`` the backend for dialect ``name``."""

    def deco(cls: type[Backend]) -> type[Backend]:
        registry[name] = cls
        cls.name = name
        return cls

    return deco


class Backend:
    """What the core needs to know about one kind of database.

    ``drivers`` maps each supported SQLAlchemy driver name to the package that
    provides it (named in the error when it is missing); :meth:`install`
    makes the engine create savepoint connections (see :mod:`nose2_sqltx.savepoints`).
    """

    name: ClassVar[str] = "*"
    display_name: ClassVar[str] = "database"
    drivers: ClassVar[dict[str, str]] = {}
    #: DDL runs inside the run's transaction and is rolled back with it. Where
    #: it is not (MySQL/MariaDB commit DDL implicitly), the schema is created,
    #: committed, before the run's transaction begins, in a database that
    #: :meth:`prepare` provides.
    transactional_ddl: ClassVar[bool] = True
    #: how each parallel worker is kept apart (for the run's summary line)
    worker_namespace: ClassVar[str] = "a schema of its own"
    #: what to do when another run's uncommitted tables block this run's schema
    concurrent_runs_fix: ClassVar[str] = "give each concurrent run its own database"
    #: whether every run (not only a parallel worker's) builds its schema in a
    #: namespace of its own (:meth:`private_namespace_sql`), so that runs
    #: sharing one database never wait on each other
    private_runs: ClassVar[bool] = False
    #: whether the production guard judges the database by its name
    named_databases: ClassVar[bool] = True
    #: driver arguments the run's connection sets itself (see :meth:`install`),
    #: with their values: an app engine's other value cannot be carried over
    own_connect_args: ClassVar[Mapping[str, object]] = {}
    #: the async drivers among ``drivers``, with what the run needs to know of each
    async_drivers: ClassVar[Mapping[str, AsyncDriver]] = {}
    #: whether a schema built inside the run's transaction may be recorded
    #: and replayed (see :mod:`nose2_sqltx.schemacache`)
    caches_schema: ClassVar[bool] = False

    def __init__(self, url: URL, key: str = "dsn", *, create_database: bool = True) -> None:
        self.url = url
        self.create_database = create_database
        driver = url.get_driver_name()
        if driver not in self.drivers:
            raise ConfigError(
                key, mask_url(url), f"driver {driver!r} is not supported for {self.display_name}",
                "Use one of: " + ", ".join(f"{self.name}+{d}" for d in sorted(self.drivers)),
            )
        self.driver = driver
        try:
            url.get_dialect().import_dbapi()
        except ImportError as exc:
            raise ConfigError(
                key, mask_url(url), f"the driver {driver!r} is not installed ({exc})",
                f"pip install {self.drivers[driver]}, or name another driver in the URL",
            ) from None
        if self.is_async:
            try:
                import greenlet  # noqa: F401  (SQLAlchemy's asyncio layer runs on it)
            except ImportError:
                raise ConfigError(
                    key, mask_url(url), f"the async driver {driver!r} needs the greenlet package, "
                    "which is not installed", "pip install greenlet (or nose2-sqltx[async])",
                ) from None

    @property
    def is_async(self) -> bool:
        """Whether the URL names an async driver (see :mod:`nose2_sqltx.runloop`)."""
        return self.driver in self.async_drivers

    @property
    def loop(self) -> RunLoop:
        """The event loop the run's connections of an async driver live on (made on first use)."""
        return self._loop_in("_loop")

    def _loop_in(self, key: str) -> RunLoop:
        loop: RunLoop | None = self.__dict__.get(key)
        if loop is None or not loop.alive:
            loop = self.__dict__[key] = RunLoop()
        return loop

    def close_loop(self) -> None:
        """Close the event loops of an async driver's connections, if any were made."""
        for key in ("_loop", "_side_loop"):
            loop: RunLoop | None = self.__dict__.pop(key, None)
            if loop is not None:
                loop.close()

    def create_engine(self, url: URL, *, run: bool = False, side: bool = False,
                      poolclass: type[Pool] | None = None, **kwargs: Any) -> Engine:
        """An Engine on ``url`` for the run's own use (``run``: the run's
        connection, whose transaction control maps onto savepoints). With an
        async driver, a sync Engine whose connections reach the driver on
        :attr:`loop`, from sync and async code alike; ``side``: on a loop of
        their own instead, for the run's helpers (the lock watchdog, a
        cancel, the MySQL run database's admin), which must work while the
        run's connection is busy."""
        if not self.is_async:
            engine = create_engine(url, poolclass=poolclass or QueuePool, **kwargs)
            if run:
                self.install(engine)
            return engine
        loop = self._loop_in("_side_loop") if side else self.loop
        # (an AsyncEngine over it checks that its pool is one for asyncio)
        engine = create_engine(url, poolclass=bridged_pool(poolclass or AsyncAdaptedQueuePool, loop), **kwargs)
        bridge_engine(engine, loop, self.async_drivers[self.driver], self.async_connect_params, self.cancel,
                      once=mask_url(url) if run else None)
        if run:
            # SQLAlchemy sets an isolation level with SQL that commits
            # (MySQL), or a driver setting: remembered and emulated instead.
            remember_isolation_level(engine)
        return engine

    def async_connect_params(self, cparams: dict[str, Any]) -> None:
        """Adjust an async driver's connect arguments (an application name)."""

    def prepare(self) -> URL:
        """Before the run connects: the URL the run's engine should use.

        A backend that makes a database for the run (and removes it in
        :meth:`release`) returns that database's URL.
        """
        return self.url

    def release(self) -> None:
        """After the run's connection is closed: undo :meth:`prepare`. Must not raise
        for what :meth:`prepare` did not get to do."""

    @property
    def cleanup_note(self) -> str:
        """How the run's work went away (for the run's summary line)."""
        return "all rolled back"

    @property
    def owns_database(self) -> bool:
        """Whether the database is the run's own (so a committed schema goes with it)."""
        return False

    @property
    def database_label(self) -> str | None:
        """The DSN's database as ``allow-database`` names it (None: nothing to guard)."""
        return self.url.database or None

    @property
    def supports_real_commits(self) -> bool:
        """Whether other connections can open the run's database (real commits)."""
        return True

    def user_tables(self, conn: Connection) -> list[str]:
        """The tables in the DSN's database: ``name`` in the default schema,
        ``schema.name`` elsewhere (for the production guard)."""
        inspector = inspect(conn)
        default = inspector.default_schema_name
        found = []
        for schema in self._schemas(conn):
            for table in inspector.get_table_names(schema=schema):
                found.append(table if schema == default else f"{schema}.{table}")
        return found

    def catalog(self, conn: Connection) -> frozenset[str]:
        """What a run must leave as it found it: the schemas and tables."""
        return frozenset(self.user_tables(conn)) | {f"schema {s}" for s in self._schemas(conn)}

    def _schemas(self, conn: Connection) -> list[str]:
        # Other runs' namespaces come and go while this one runs.
        return [s for s in inspect(conn).get_schema_names()
                if s not in SYSTEM_SCHEMAS and not s.startswith(("pg_", RUN_NAME_PREFIX))]

    def install(self, engine: Engine) -> None:
        """Make ``engine`` create :class:`~nose2_sqltx.savepoints.SavepointConnection` DB-API connections."""
        raise NotImplementedError

    def begin_sql(self) -> list[str]:
        """Statements that open the run's transaction (none where the driver
        opens one implicitly)."""
        return []

    def check_tables(self, tables: list[Any]) -> None:
        """Refuse metadata this backend cannot isolate (a :class:`SetupError`)."""

    def run_setup_sql(self, *, lock_timeout_ms: int, statement_timeout_ms: int) -> list[str]:
        """Statements run first in the run's transaction (timeouts and the like)."""
        return []

    def private_schemas(self, name: str, schemas: Sequence[str]) -> dict[str, str]:
        """The run's own schemas (for SQLAlchemy's ``schema_translate_map``)
        standing in for the named ``schemas`` its tables name (``billing``),
        ``name`` being the run's namespace; empty where the backend has none
        (those tables are then made where their names say)."""
        return {}

    def private_namespace_sql(self, name: str, schemas: Sequence[str] = ()) -> list[str]:
        """Statements that give the run a namespace of its own, and the
        ``schemas`` of :meth:`private_schemas`, inside its transaction; none
        where each run has a database of its own already."""
        raise SetupError(
            "running the tests in parallel (nose2 -N)",
            f"parallel runs are not supported on {self.display_name}: run without -N "
            "(nose2's multiprocess plugin)",
        )

    def reap(self, conn: Connection) -> list[str]:
        """Before the run: drop what runs that are certainly gone left
        committed (a run killed after code under test committed its
        namespace); return the names dropped. Liveness is the database's
        word, never a guess from a process id."""
        return []

    def check_lock_room(self, conn: Connection, runs: int) -> int | None:
        """After the run's schema is built: how many locks the run holds
        (None: not counted), and refuse to go on (a :class:`SetupError`) when
        ``runs`` runs like this one (parallel workers) cannot hold theirs at
        once on this server."""
        return None

    def explain_setup_failure(self, exc: BaseException) -> str | None:
        """What to add to the reason a schema build failed with ``exc`` (None: nothing)."""
        return None

    def drop_private_namespace(self, conn: Connection, name: str) -> tuple[str, ...]:
        """After the run's transaction was committed behind its back: drop the
        namespace :meth:`private_namespace_sql` made, if it is there; return
        what was dropped (for the message)."""
        return ()

    def work_committed(self, statement: str | None, dropped: tuple[str, ...]) -> bool:
        """Whether the run's work reached the database when ``statement`` (None:
        not seen) ended its transaction. With transactional DDL the run's
        tables can only have been there to drop (``dropped``) if it was."""
        return bool(dropped)

    def server_version(self, dbapi_connection: Any) -> str:
        return self.display_name

    #: whether sequences (auto-increment counters) can be put back inside the
    #: run's transaction, for ``reset-sequences``
    resets_sequences: ClassVar[bool] = True

    def sequence_values(self, conn: Connection, *, run_only: bool = False) -> dict[str, int | None]:
        """The database's sequences that a rollback does not put back, and
        where each stands (None: never used); ``run_only``: those in the
        schemas the run's tables are made in (its search path). Empty where
        the transaction rolls them back itself (SQLite)."""
        return {}

    def restore_sequences_sql(self, values: dict[str, int | None]) -> str | None:
        """One statement that puts back every sequence of ``values`` that
        moved (and only those), or None when there is nothing to put back."""
        return None

    def cursor_setup(self, dialect: Any) -> Callable[[Any], None] | None:
        """For an app engine that keeps its own ``dialect`` on the run's
        connection: what to do to each of its cursors so that the dialect's
        per-connection options apply to its statements (None: nothing)."""
        return None

    # -- other connections' waits on the run's locks (see nose2_sqltx.lockwait) --
    def blocked_by_sql(self) -> str | None:
        """A query (parameters ``run``: the run's backend id, ``ms``) for the
        backends that have waited at least ``ms`` for a lock the run holds;
        None where the database cannot tell, and other connections get
        :meth:`other_session_sql` instead."""
        return None

    def other_session_sql(self, lock_timeout_ms: int) -> list[str]:
        """Statements that give another connection to the run's database the lock timeout."""
        return []

    def shares_locks_with(self, url: URL) -> bool:
        """Whether connections to ``url`` can wait on the run's locks (the same server)."""
        return url.get_backend_name() == self.url.get_backend_name() and \
            (url.host, url.port) == (self.url.host, self.url.port)

    def backend_pid(self, dbapi_connection: Any) -> int | None:
        """The server's id for ``dbapi_connection``, where it has one."""
        return None

    def is_cancel(self, exc: BaseException) -> bool:
        """Whether ``exc`` (or what it wraps) is a statement cancelled by request."""
        return False

    def tables_size(self, dbapi_connection: Any, names: Sequence[str]) -> int | None:
        """Bytes the run's tables ``names`` take with their indexes, where
        rolled-back rows stay in them and slow long runs down; None where
        they do not (see :mod:`nose2_sqltx.refresh`)."""
        return None

    def cancel(self, dbapi_connection: Any) -> None:
        """Cancel the statement ``dbapi_connection`` is running, from another
        thread (a signal's); the default cannot, and the run waits for it."""

    def socket_fd(self, dbapi_connection: Any) -> int | None:
        """The file descriptor of the connection's socket, if it has one: a
        forked child must not write to it (a driver closing the connection
        there would end the parent's session)."""
        fileno = getattr(dbapi_connection, "fileno", None)
        try:
            return int(fileno()) if fileno is not None else None
        except Exception:  # noqa: BLE001 - no socket to protect
            return None

    def commit_check(self, conn: Connection) -> CommitCheck | None:
        """What to run at each app commit to check what only a real COMMIT
        checks (deferred constraints); None when the run's database has
        nothing to check, so that commits cost nothing extra. Asked once the
        run's schema and fixtures are built."""
        return None

    def is_lock_timeout(self, exc: BaseException) -> bool:
        """Whether ``exc`` (or what it wraps) is the server giving up on a lock."""
        return False

    def explain(self, exc: BaseException, *, lock_timeout_ms: int, statement_timeout_ms: int) -> str | None:
        """A sentence to add to a test's error caused by ``exc``, if it helps."""
        return None


def remember_isolation_level(engine: Engine) -> None:
    """Keep SQLAlchemy's isolation-level changes away from an armed connection.

    For drivers whose isolation level SQLAlchemy sets with SQL (MySQL's
    ``SET SESSION TRANSACTION ...; COMMIT``) or with a setting that commits
    (sqlite3's ``isolation_level``): while the connection is armed, the level is
    remembered (``AUTOCOMMIT`` switches on its emulated autocommit)
    instead of being applied.
    """
    dialect: Any = engine.dialect
    real_set = dialect.set_isolation_level
    real_get = dialect.get_isolation_level

    def set_isolation_level(dbapi_connection: Any, level: str) -> None:
        if getattr(dbapi_connection, "sqltx_armed", False):
            dbapi_connection.sqltx_remember("isolation_level", level)
            dbapi_connection.sqltx_remember("autocommit", level == "AUTOCOMMIT")
            return
        real_set(dbapi_connection, level)

    def get_isolation_level(dbapi_connection: Any) -> Any:
        if getattr(dbapi_connection, "sqltx_armed", False):
            remembered = dbapi_connection.sqltx_remembered("isolation_level", None)
            if remembered is not None:
                return remembered
        return real_get(dbapi_connection)

    dialect.set_isolation_level = set_isolation_level
    dialect.get_isolation_level = get_isolation_level
