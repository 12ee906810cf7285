"""Exceptions raised by nose2-sqltx.

Every exception carries the data it talks about as attributes, and its message
says what happened, what was expected and how to fix it.
"""

from __future__ import annotations

from .environment import ALLOW_DATABASE_ENV, DSN_ENV, SERVER_VERSION_ENV

__unittest = True  # keep our frames out of test tracebacks

__all__ = [
    "SqltxError",
    "ConfigError",
    "NotActiveError",
    "AlreadyRunningError",
    "ScopeEndedError",
    "UnknownDatabaseError",
    "UnsupportedObjectError",
    "DatabaseUnavailableError",
    "ConnectionLostError",
    "SetupError",
    "MigrationDriftError",
    "TransactionEndedError",
    "ImplicitCommitError",
    "SharedTransactionError",
    "UntranslatedSchemaError",
    "ForkedProcessError",
    "LockWaitError",
    "LeakError",
    "StrayAccessError",
    "ThreadOutlivedTestError",
    "LoopBlockedError",
    "LoopWaitError",
    "DatabaseChangedError",
    "UnsafeDatabaseError",
    "ServerBinariesNotFoundError",
    "ServerStartError",
]


class SqltxError(Exception):
    """Base class of every error nose2-sqltx raises on purpose."""

    def __reduce__(self) -> tuple[object, ...]:
        # Subclasses take their data, not the message, so the default pickling
        # (cls(*args)) cannot rebuild them; nose2's parallel workers pickle
        # test errors to send them to the main process.
        return (_rebuild, (type(self), str(self), self.__dict__))


def _rebuild(cls: type[SqltxError], message: str, state: dict[str, object]) -> SqltxError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class ConfigError(SqltxError, ValueError):
    """A setting in ``[sqltx]`` (or its environment variable, or the section's name) is wrong.

    ``key`` is the setting (``[name]`` for a section), ``value`` what was given (DSNs masked), ``problem``
    what is wrong and ``fix`` what to do.
    """

    def __init__(self, key: str, value: object, problem: str, fix: str, *, section: str = "sqltx") -> None:
        self.key = key
        self.value = value
        self.problem = problem
        self.fix = fix
        #: the section the key is in (``sqltx:analytics`` for one of the run's other databases)
        self.section = section
        shown = "" if value is None else f" = {value}"
        # Environment variables are upper case; keys of [sqltx] are not; a
        # section is named in brackets.
        where = (f"section {key}" if key.startswith("[") else
                 f"command-line option {key}" if key.startswith("--") else
                 f"environment variable {key}" if key.isupper() else f"[{section}] {key}")
        super().__init__(f"{where}{shown}: {problem}. {fix}")

    @classmethod
    def not_one_of(cls, key: str, value: object, choices: tuple[str, ...]) -> ConfigError:
        """``value`` of ``key`` is none of ``choices``."""
        return cls(key, value, "is not one of " + ", ".join(choices), f"Write {' or '.join(choices)}")

    def in_section(self, section: str) -> ConfigError:
        """This error, about a key of ``[section]`` (``sqltx:analytics``) instead
        of ``[sqltx]``; itself if it is about a section, a variable or an option."""
        if self.key.startswith(("[", "--")) or self.key.isupper():
            return self
        return ConfigError(self.key, self.value, self.problem, self.fix, section=section)


class NotActiveError(SqltxError, RuntimeError):
    """Database access was asked for while no isolated database is running."""

    def __init__(self, what: str = "DatabaseTest", runner: str = "nose2", switched_off_in: str | None = None) -> None:
        self.what = what
        self.runner = runner
        #: the config file whose ``always-on = false`` switched nose2-sqltx off
        self.switched_off_in = switched_off_in
        if switched_off_in is not None:  # (python -m unittest's: the other runners have a switch)
            message = (f"{what}: nose2-sqltx is switched off by always-on = false in {switched_off_in}, and python -m "
                       "unittest has no switch to turn it on: remove that line, or run nose2 --sqltx or pytest --sqltx")
        elif runner == "pytest":
            message = (f"{what} needs nose2-sqltx's pytest plugin, which is not switched on: add a [tool.sqltx] "
                       "section to pyproject.toml (or [sqltx] to setup.cfg), set SQLTX_DSN, or run pytest --sqltx")
        elif runner == "unittest":
            message = (f"{what} under python -m unittest: unittest calls nothing around a test that is not a "
                       "DatabaseTest, so it has no transaction of its own (and under unittest the first "
                       "DatabaseTest class opens the run). Make the class a DatabaseTest, or run the tests with "
                       "nose2 or pytest, which give every test one")
        else:
            message = (f"{what} needs the nose2-sqltx plugin: run `nose2 --plugin nose2_sqltx`, "
                       "or add `plugins = nose2_sqltx` under [unittest] in unittest.cfg "
                       "(and do not set `always-on = false` under [sqltx])")
        super().__init__(message)


class AlreadyRunningError(SqltxError, RuntimeError):
    """A second :class:`~nose2_sqltx.IsolatedDatabase` was started while one runs.

    ``running`` is the masked URL of the one that runs.
    """

    def __init__(self, running: str) -> None:
        self.running = running
        super().__init__(
            f"another IsolatedDatabase is already running in this process (on {running}); stop it first "
            "(one run per process: its transaction is what every test shares)"
        )


class ScopeEndedError(SqltxError, RuntimeError):
    """A handle of a scope that has ended was asked for.

    ``depth`` is the ended scope's depth (1: a class, 2: a test).
    """

    def __init__(self, depth: int) -> None:
        self.depth = depth
        super().__init__(
            f"this database scope (depth {depth}) has ended; use the current one "
            "(self.session in a test, nose2_sqltx.current() elsewhere)"
        )


class UnknownDatabaseError(SqltxError, LookupError):
    """A test asked for a database the run does not have (``self.databases["nope"]``).

    ``name`` is the name asked for, ``known`` the names the run has (its ``[sqltx:<name>]`` sections).
    """

    def __init__(self, name: object, known: tuple[str, ...]) -> None:
        self.name = name
        self.known = known
        have = (f"its other databases are {', '.join(known)}" if known else "it has no other database")
        super().__init__(
            f"this run has no database named {name!r}: {have} (one per [sqltx:<name>] section; the run's own, "
            f"[sqltx], is self.session, self.connection and self.engine). Check the name, or add a "
            f"[sqltx:{name}] section with its dsn"
        )


class AsyncDriverRequiredError(SqltxError, RuntimeError):
    """Async handles (``AsyncDatabaseTest``, ``scope.async_session``) were
    asked for, but the run's driver is sync.

    ``masked_url`` is the run's database, ``driver`` its sync driver.
    """

    def __init__(self, masked_url: str, driver: str, what: str = "AsyncDatabaseTest") -> None:
        self.masked_url = masked_url
        self.driver = driver
        self.what = what
        super().__init__(
            f"{what} needs an async driver, and the run's database {masked_url} uses the sync driver "
            f"{driver!r}; name an async one in dsn (postgresql+asyncpg://, postgresql+psycopg_async://, "
            "sqlite+aiosqlite://, mysql+aiomysql://, mysql+asyncmy://): DatabaseTest classes of the same "
            "run use it too"
        )


class UnsupportedObjectError(SqltxError, TypeError):
    """An object given to redirect (or as metadata) is of a kind that cannot be used.

    ``name`` is where it came from, ``kind`` its type's name, ``expected``
    what would have worked.
    """

    def __init__(self, name: str, kind: str, expected: str) -> None:
        self.name = name
        self.kind = kind
        self.expected = expected
        super().__init__(f"{name} is a {kind}, not {expected}")


class DatabaseUnavailableError(SqltxError, ConnectionError):
    """The database named by the DSN could not be reached or logged into."""

    def __init__(self, url: str, reason: str, setting: str = f"dsn (or {DSN_ENV})") -> None:
        self.url = url  # already masked
        self.reason = reason
        #: where the URL is set, as the fix names it
        self.setting = setting
        super().__init__(
            f"cannot connect to {url}: {reason}. Check that the server is running and "
            f"that {setting} names the right host, port, user and database"
        )


class ConnectionLostError(SqltxError, ConnectionError):
    """The run's connection to the database was lost (server stopped, backend terminated).

    ``reason`` is the driver's one-line account. Nothing was committed by
    it: a server rolls back the transaction of a connection that drops.
    ``reported`` is set once a test's result carries it, so that the scopes
    ended after it (and the run's end) do not report it again.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url  # already masked
        self.reason = reason
        self.reported = False
        super().__init__(
            f"the connection to {url} was lost ({reason}); the server rolled back the run's transaction "
            "when the connection dropped. Check that the server is running and that nothing terminates "
            "the test run's connection"
        )


class SetupError(SqltxError):
    """Creating the schema or running a fixture failed at the start of the run."""

    def __init__(self, step: str, reason: str) -> None:
        self.step = step
        self.reason = reason
        super().__init__(f"{step} failed: {reason}")


class MigrationDriftError(SetupError):
    """``check-migrations``: the schema the migrations built and the models
    disagree. ``differences`` says how, one line each."""

    def __init__(self, alembic: str, differences: list[str]) -> None:
        self.alembic = alembic
        self.differences = differences
        listing = "".join(f"\n  - {line}" for line in differences)
        super().__init__(
            "checking the migrations against the models (check-migrations)",
            f"the schema that {alembic}'s migrations built differs from the models in {len(differences)} "
            f"place(s):{listing}\nWrite the migration the models need (alembic revision --autogenerate), or "
            "change the models to match the migrations",
        )


class TransactionEndedError(SqltxError):
    """Code under test ended the run's transaction behind the plugin's back.

    This happens when raw transaction-control SQL (``COMMIT``, ``ROLLBACK``,
    ``RELEASE``/``ROLLBACK TO`` of the plugin's own savepoints) is executed.
    ``statement`` is the last statement seen, ``committed`` whether the run's
    work reached the database, ``dropped`` what nose2-sqltx dropped again
    because it was committed, ``rebuilt`` whether the schema and fixtures
    were made again for the tests that follow, and ``refused`` whether this
    is the refusal of a later statement in the same test.
    """

    def __init__(self, statement: str | None, committed: bool, dropped: tuple[str, ...] = (),
                 *, rebuilt: bool = False, refused: bool = False) -> None:
        self.statement = statement
        self.committed = committed
        self.dropped = dropped
        self.rebuilt = rebuilt
        self.refused = refused
        what = (f"the statement {statement!r}" if statement
                else "a statement nose2-sqltx did not see (a cursor of another class?)")
        fix = (
            "Use session.commit(), connection.commit() or rollback(), which nose2-sqltx maps "
            "onto savepoints, instead of executing COMMIT or ROLLBACK as SQL"
        )
        if refused:
            super().__init__(
                f"refused to run more SQL: {what} ended the test transaction earlier in this test; when the "
                "test ends, nose2-sqltx drops what that committed and rebuilds the schema and fixtures for "
                f"the tests that follow. {fix}"
            )
            return
        damage = "the run's work up to then was committed" if committed else "the run's transaction is gone"
        if dropped:
            damage += f"; nose2-sqltx dropped the tables it had created ({', '.join(dropped)})"
            if rebuilt:
                damage += " and rebuilt the schema"
        elif rebuilt:
            damage += "; nose2-sqltx rebuilt the schema"
        super().__init__(f"{what} ended the test transaction ({damage}). {fix}")


class ImplicitCommitError(SqltxError):
    """A statement would commit the test transaction implicitly (MySQL/MariaDB).

    Raised before the statement runs, so nothing was committed. ``statement``
    is the statement (shortened), ``server`` the kind of database and ``fix``
    what to do instead.
    """

    def __init__(self, statement: str, server: str, fix: str) -> None:
        self.statement = statement
        self.server = server
        self.fix = fix
        super().__init__(
            f"refused {statement!r}: on {server} it commits the open transaction implicitly, which "
            f"would keep this test's data and end the isolation of every later test. {fix}"
        )


class SharedTransactionError(SqltxError):
    """Two handles of one test (Sessions, Connections) would disturb each other.

    In production each handle has a transaction of its own; in a test they
    share the test transaction. Where that cannot give the production result,
    the call is refused before anything is sent. ``action`` is what ``handle``
    asked for (``"release of savepoint sa_savepoint_1"``, ``"rollback"``),
    ``other`` the handle whose work it would have undone or kept, and
    ``other_work`` what that work is; handles are named by where the test first
    used them.
    """

    def __init__(self, action: str, handle: str, other: str, other_work: str) -> None:
        self.action = action
        self.handle = handle
        self.other = other
        self.other_work = other_work
        super().__init__(
            f"the {action} by {handle} was refused: in the one test transaction it would also "
            f"{other_work} of {other}, which production never does (each handle has its own transaction "
            "there). Fix: use one Session (or Connection) per test for this work, or finish one handle's "
            "savepoints and transaction before the other handle writes or opens its own"
        )


class UntranslatedSchemaError(SqltxError):
    """A statement names a table of a named schema in SQL text (PostgreSQL).

    Each run keeps the tables of named schemas in schemas of its own and
    SQLAlchemy renames them in the statements it builds (its
    ``schema_translate_map``), but not in SQL text, which would reach
    another run's tables or nothing. Raised before the statement runs.
    ``name`` is the name as the statement gives it, ``schema_map`` the run's
    names for the named schemas, ``statement`` the statement (shortened).
    """

    def __init__(self, name: str, schema_map: dict[str, str], statement: str) -> None:
        self.name = name
        self.schema_map = dict(schema_map)
        self.statement = statement
        names = ", ".join(f"{schema} as {own}" for schema, own in sorted(self.schema_map.items()))
        super().__init__(
            f"refused {statement!r}: it names {name} in SQL text, and this run keeps the tables of named "
            f"schemas in schemas of its own ({names}) so that concurrent runs never share them; SQLAlchemy "
            "renames the schema in the statements it builds, not in text. Fix: build the statement from "
            "the Table or the mapped class (select(table), table.insert(), session.execute(...)) instead of text"
        )


class ForkedProcessError(SqltxError, RuntimeError):
    """A process forked from the test run used the run's connection.

    ``parent`` is the run's process id, ``child`` this one's. The connection
    belongs to the parent's test transaction; the child's statements, commits
    or rollbacks would run in it (or break it), so they are refused.
    """

    def __init__(self, parent: int, child: int) -> None:
        self.parent = parent
        self.child = child
        super().__init__(
            f"process {child} was forked from the test run (process {parent}) and used the run's database "
            "connection, which belongs to the parent's test transaction: the child's work would be mixed into "
            "the parent's, or end it. Nothing was sent. Fix: run this code in the test's own process, or let "
            "the child make an engine of its own with create_engine() (its work is then outside the test "
            "transaction and not rolled back: wrap that engine in nose2_sqltx.unwatched(), or give the test "
            "real commits)"
        )


class LockWaitError(SqltxError):
    """A connection outside the test transaction waited for one of its locks
    longer than lock-timeout, and its statement was ended.

    ``statement`` is that connection's statement (shortened), ``database``
    the run's database (masked), ``lock_timeout_ms`` the limit, ``reason``
    the driver's one-line error, and ``certain`` whether the run's
    connection is known to hold the lock (PostgreSQL) or only the likely
    holder (a lock wait timeout on a connection to the run's server).
    """

    def __init__(self, statement: str, database: str, lock_timeout_ms: int, reason: str, *,
                 certain: bool) -> None:
        self.statement = statement
        self.database = database
        self.lock_timeout_ms = lock_timeout_ms
        self.reason = reason
        self.certain = certain
        holder = ("a lock that the test transaction of nose2-sqltx holds" if certain else
                  "a lock, and the test transaction of nose2-sqltx, which holds its locks until the run ends, is "
                  "the likely holder")
        super().__init__(
            f"{statement!r} waited longer than lock-timeout ({lock_timeout_ms} ms) for {holder} on {database}, "
            f"and was ended ({reason}). A connection outside the test transaction cannot see the test's "
            "uncommitted work and waits for its locks. Fix: run this work through the test's engine (name its "
            "engine under engines in [sqltx]), or give the test real commits"
        )


class LeakError(SqltxError):
    """App code wrote through a connection outside the test transaction.

    ``statement`` is the write (shortened), ``engine`` the engine's masked URL,
    ``names`` where the engine was found among the loaded modules (``module:attr``),
    ``refused`` whether the write was stopped before it ran, and ``reported``
    whether a test's result already carries it (so the end of the test does
    not raise it a second time).
    """

    def __init__(self, statement: str, engine: str, names: tuple[str, ...] = (), *, refused: bool = True) -> None:
        self.statement = statement
        self.engine = engine
        self.names = names
        self.refused = refused
        self.reported = False
        super().__init__(self._explain())

    def _known(self) -> str:
        return f" ({', '.join(self.names)})" if self.names else ""

    def _explain(self) -> str:
        outcome = "it was refused, nothing was written" if self.refused else "it ran"
        if self.names:
            fix = (f"add {self.names[0]} under engines (or its session factory under sessions) in [sqltx], "
                   "so that nose2-sqltx redirects it into the test transaction")
        else:
            fix = ("pass the test's engine (self.engine, or nose2_sqltx.current().engine) to the code that "
                   "made this one, or name where it lives under engines in [sqltx]")
        return (f"{self.statement!r} was sent through an engine that is not in the test transaction: "
                f"{self.engine}{self._known()}; {outcome}, because its work would outlive the test. Fix: {fix}. "
                "For a deliberate second connection, wrap its engine in nose2_sqltx.unwatched(engine)")


class ThreadOutlivedTestError(SqltxError):
    """A thread started during ``test`` (a test's or a class's scope) sent a
    statement after that scope ended; it was refused. ``thread`` is its name."""

    def __init__(self, thread: str, test: str) -> None:
        self.thread = thread
        self.test = test
        super().__init__(
            f"thread {thread!r}, started during {test}, used the database after that test ended; the statement "
            "was refused, since it would have run in another test's transaction. Stop the thread before its test "
            "ends (server.shutdown() and thread.join() in tearDown or addCleanup), or start it before the run "
            "(at import) if it serves every test"
        )


class LoopBlockedError(SqltxError):
    """A thread waited ``waited`` seconds for the run's connection while an
    ``AsyncDatabaseTest`` blocked the run's event loop in sync code, at
    ``where`` (``file:line in function``; a line per frame that says it,
    innermost first), and gave up: the connection serves no one while its
    loop is blocked, so the wait would never end."""

    def __init__(self, waited: float, where: tuple[str, ...]) -> None:
        self.waited = waited
        self.where = where
        #: whether the test's result carries it already (else the test's end raises it)
        self.reported = False
        at = f" at {'; called from '.join(where)}" if where else ""
        super().__init__(
            f"this thread waited {waited:.1f}s for the test transaction's connection while the async test blocks "
            f"the run's event loop{at}, and gave up: the test runs on the loop the connection lives on, so "
            "neither can go on (in production each would have its own connection). Fix: await instead of "
            "blocking (httpx.AsyncClient with ASGITransport instead of Starlette's TestClient; await "
            "asyncio.to_thread(...) for a call that waits on a thread), or set async-test-loop = own in [sqltx], "
            "which runs each async test on a loop of its own, more slowly"
        )


class LoopWaitError(SqltxError, RuntimeError):
    """Sync code running on the run's event loop, outside an
    ``AsyncDatabaseTest``'s tasks (a loop callback, a task made with a task
    factory of the test's own), called the database: it cannot wait for the
    loop it blocks. ``call`` is what it called."""

    def __init__(self, call: object) -> None:
        self.call = call
        name = getattr(call, "__qualname__", None) or type(call).__name__
        super().__init__(
            f"sync code on the run's event loop called the database ({name}) outside the test's tasks, where it "
            "would wait for the loop it blocks. Fix: await the async API there, or run the sync code with "
            "await asyncio.to_thread(...), or set async-test-loop = own in [sqltx]"
        )


class StrayAccessError(LeakError):
    """With ``only-database-tests``, a test that is not a ``DatabaseTest``
    (and not marked ``@allow_database``) sent ``statement`` through
    ``engine`` (``names``: where it lives); it was refused before it ran.
    ``test`` is the test's id."""

    def __init__(self, test: str, statement: str, engine: str, names: tuple[str, ...] = ()) -> None:
        self.test = test
        super().__init__(statement, engine, names)

    def _explain(self) -> str:
        return (f"{self.test} is not a DatabaseTest, and it sent {self.statement!r} through "
                f"{self.engine}{self._known()}; it was refused: with only-database-tests in [sqltx], only "
                "DatabaseTest classes use the database. Make the class a DatabaseTest, mark it (or the test) with "
                "@nose2_sqltx.allow_database, or keep the database out of this test")


class DatabaseChangedError(SqltxError):
    """At the end of the run, the database's tables or schemas differ from its start.

    ``added`` and ``removed`` name them (``schema.table``, or ``schema`` alone);
    ``moved`` names sequences that were there before the run and could not be
    put back where they stood.
    """

    def __init__(self, url: str, added: tuple[str, ...], removed: tuple[str, ...],
                 moved: tuple[str, ...] = ()) -> None:
        self.url = url
        self.added = added
        self.removed = removed
        self.moved = moved
        parts = []
        if added:
            parts.append(f"new: {', '.join(added)}")
        if removed:
            parts.append(f"gone: {', '.join(removed)}")
        if moved:
            parts.append(f"sequences moved: {', '.join(moved)}")
        super().__init__(
            f"{url} is not as the run found it ({'; '.join(parts)}). Something committed outside the "
            "test transaction, and nose2-sqltx did not undo it: look for an engine, connection or "
            "subprocess that the run does not redirect (writes through unredirected engines fail "
            "their test with LeakError), then restore these by hand"
        )


class UnsafeDatabaseError(SqltxError):
    """The DSN does not look like a test database (the production guard).

    ``database`` is its name, ``reasons`` what made the guard refuse.
    """

    def __init__(self, url: str, database: str, reasons: list[str]) -> None:
        self.url = url
        self.database = database
        self.reasons = reasons
        super().__init__(
            f"refusing to run tests on {url}: {'; and '.join(reasons)}. Tests are rolled back, but code "
            "that escapes the test transaction writes for real, so nose2-sqltx only runs on databases "
            "that look like test databases. Point dsn at one (a name with 'test' in it, holding no "
            f"other tables), or, if this database is meant for tests, add `allow-database = {database}` "
            f"under [sqltx] (or set {ALLOW_DATABASE_ENV})"
        )


class ServerBinariesNotFoundError(SqltxError, FileNotFoundError):
    """No PostgreSQL server binaries (``initdb`` and ``postgres``) were found.

    ``looked`` lists the places tried, ``hint`` how to install them.
    """

    def __init__(self, looked: list[str], hint: str, version: int | None = None) -> None:
        self.looked = looked
        self.hint = hint
        #: the major version asked for (``server-version``); ``looked`` then lists the servers found
        self.version = version
        if version is not None:
            found = f"found {', '.join(looked)}" if looked else "found none at all"
            super().__init__(
                "no dsn is set, so nose2-sqltx starts a throwaway PostgreSQL server, but found no server binaries "
                f"of PostgreSQL {version} (server-version, or {SERVER_VERSION_ENV}); {found}. {hint}"
            )
            return
        super().__init__(
            "no dsn is set, so nose2-sqltx starts a throwaway PostgreSQL server, but found no "
            f"server binaries (initdb and postgres); looked in: {', '.join(looked)}. {hint}"
        )


class ServerStartError(SqltxError):
    """The throwaway server did not start; ``log_tail`` is the end of its own log."""

    def __init__(self, problem: str, log_tail: str, fix: str | None = None) -> None:
        self.problem = problem
        self.log_tail = log_tail
        self.fix = fix
        text = f"the throwaway PostgreSQL server did not start: {problem}"
        if fix:
            text += f". Fix: {fix}"
        if log_tail.strip():
            text += "\n  server log (last lines):\n" + "\n".join("    " + line for line in log_tail.splitlines())
        super().__init__(text)
