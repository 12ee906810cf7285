"""Settings: read once from ``[sqltx]`` and the environment, validated, frozen.

Knows nothing about nose2: :meth:`Settings.from_options` takes plain
``(key, value)`` pairs. Its only I/O is importing the objects the settings
name (:func:`load_objects`), which it checks are of the right kind, so that
a runner adapter gets either usable objects or one :class:`ConfigError`.
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from sqlalchemy import MetaData
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .dialects import backend_for, with_installed_driver
from .environment import (
    ALLOW_DATABASE_ENV,
    ASYNC_TEST_LOOPS,
    DEFAULT_LOCK_TIMEOUT_MS,
    DEFAULT_STATEMENT_TIMEOUT_MS,
    DSN_ENV,
    KEEP_SERVER_ENV,
    NAMED_DSN_ENV,
    PG_BINDIR_ENV,
    SCHEMA_CACHE_ENV,
    SERVER_DIR_ENV,
    SERVER_VERSION_ENV,
    SHARD_ENV,
)
from .errors import ConfigError
from .messages import mask_url
from .redirect import redirect_kind
from .sharding import Shard, shard_from_ci

__unittest = True

__all__ = ["KEY_HELP", "Settings", "Loaded", "check_sections", "load_objects", "import_object"]

#: the main process's note to the workers of nose2 -N: the dsn it sets is its throwaway server
MAIN_SERVER_KEY = "sqltx-main-server"
#: the main process's note to the workers of nose2 -N: how many of them share the database
WORKERS_KEY = "sqltx-workers"
#: Every key ``[sqltx]`` accepts; ``always-on`` is nose2's own.
KEYS = (
    "dsn", "metadata", "fixtures", "lock-timeout", "statement-timeout",
    "engines", "sessions", "alembic", "allow-database",
    "pg-bindir", "server-version", "keep-server", "server-tcp", "server-dir", "create-database", "reset-sequences",
    "schema-cache", "shard",
    "durations", "schemas", "show-queries", "check-migrations", "only-database-tests",
    "flask-session", "async-test-loop", "always-on",
    MAIN_SERVER_KEY, WORKERS_KEY,
)
#: the keys a section of one of the run's other databases (``[sqltx:<name>]``) takes: the rest are the whole run's
DATABASE_KEYS = (
    "dsn", "metadata", "fixtures", "lock-timeout", "statement-timeout", "engines", "sessions", "alembic",
    "allow-database", "create-database", "reset-sequences", "schemas", "check-migrations",
)
#: what names ``[sqltx:<name>]`` takes: a name that is also part of an environment variable's
_DATABASE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: the keys a user writes (``sqltx-main-server`` is the main process's note to its workers)
PUBLIC_KEYS = tuple(k for k in KEYS if not k.startswith("sqltx-"))
#: one line per key, for ``python -m nose2_sqltx --help`` (the README's table has the whole story)
KEY_HELP = {
    "dsn": "database URL (postgresql+psycopg2://, postgresql+psycopg://, mysql+pymysql://, mysql+mysqldb://, "
           "sqlite://; async: postgresql+asyncpg://, postgresql+psycopg_async://, sqlite+aiosqlite://, "
           "mysql+aiomysql://, mysql+asyncmy://); none: a throwaway PostgreSQL server",
    "metadata": "module:attribute paths of MetaData objects or declarative Bases: the schema",
    "fixtures": "module:callable paths, each called once with the run's Connection",
    "lock-timeout": "how long a statement waits for a lock (500ms, 10s, 2min; 0: no limit); default 10s",
    "statement-timeout": "how long a statement may run (same format); default 60s",
    "engines": "module:attribute paths of the app's Engines or AsyncEngines, redirected into the test transaction",
    "sessions": "paths of the app's sessionmaker, scoped_session, Flask-SQLAlchemy db, async_sessionmaker or "
                "async_scoped_session, redirected too",
    "alembic": "path of an alembic.ini: the schema from alembic upgrade head, instead of metadata",
    "allow-database": "database names the production guard lets through",
    "pg-bindir": "throwaway server: the directory with initdb and postgres; wheel: the [server] extra's",
    "server-version": "throwaway server: the PostgreSQL major version to run (16, 18), among the system's and the "
                      "[server] extra's",
    "keep-server": "throwaway server: leave it running for the next run (true/false)",
    "server-tcp": "throwaway server: also listen on 127.0.0.1 (true/false)",
    "server-dir": "throwaway server: where its directory is made",
    "create-database": "MySQL/MariaDB: a database of the run's own (true, the default) or the DSN's (false)",
    "reset-sequences": "every test starts from the same sequence values (true/false)",
    "schema-cache": "PostgreSQL: build the schema by replaying the statements that built it last time, while the "
                    "migrations or metadata are unchanged: auto (with the throwaway server, the default), on, off",
    "shard": "run one part of the suite, I/N counting from 1 (1/3, 2/3, 3/3); off: ignore the CI's job variables",
    "durations": "a JSON file of test class times: read to balance the shards, written after the run",
    "schemas": "PostgreSQL: named schemas the app's tables use, each kept private to the run (default: those "
               "the metadata's tables name; with alembic, list them)",
    "show-queries": "a failed test's report ends with the SQL it sent (true/false)",
    "check-migrations": "with alembic and metadata: the run starts only if the migrated schema matches the "
                        "models (true/false)",
    "only-database-tests": "a test that is not a DatabaseTest (nor marked @allow_database) fails when it uses "
                           "the database (true/false)",
    "flask-session": "Flask-SQLAlchemy's db.session: app-context (one Session per app context, the default) or "
                     "test (one Session per test)",
    "async-test-loop": "AsyncDatabaseTest: run (each test's coroutines on the run's event loop, the default) or own "
                       "(on a loop of the test's own, as IsolatedAsyncioTestCase makes; slower)",
    "always-on": "nose2's own: false loads the plugin switched off (--sqltx switches it on)",
}
#: Keys an environment variable can set; the environment wins over the file.
ENVIRONMENT = {
    "dsn": DSN_ENV,
    "pg-bindir": PG_BINDIR_ENV,
    "server-version": SERVER_VERSION_ENV,
    "keep-server": KEEP_SERVER_ENV,
    "server-dir": SERVER_DIR_ENV,
    "allow-database": ALLOW_DATABASE_ENV,
    "shard": SHARD_ENV,
    "schema-cache": SCHEMA_CACHE_ENV,
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

_UNITS_MS = {"ms": 1, "s": 1000, "min": 60_000}
_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|min)?\s*$")
#: the longest timeout every backend accepts: PostgreSQL's settings are 32-bit milliseconds
MAX_TIMEOUT_MS = 2_147_483_647
_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def check_sections(sections: Iterable[str], section: str = "sqltx") -> None:
    """With no ``[sqltx]`` among a config file's ``sections``, refuse one
    whose name is close to it (``[sqlxt]``, ``[sqltx ]``), which would
    otherwise be ignored without a word."""
    names = list(sections)
    if section in names:
        return
    named = [name for name in names if name.startswith(f"{section}:")]
    if named:
        raise ConfigError(f"[{named[0]}]", None, f"is set, and there is no [{section}] section for the run's own "
                          "database", f"Add a [{section}] section too (with no dsn: a throwaway server)")
    close = difflib.get_close_matches(section, [name.strip().lower() for name in names], n=1, cutoff=0.6)
    if close:
        name = next(n for n in names if n.strip().lower() == close[0])
        raise ConfigError(f"[{name}]", None, f"nose2-sqltx reads no such section, and there is no [{section}]",
                          f"Did you mean [{section}]? Rename the section")


def _parse_schemas(raw: list[str], url: URL | None) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(" ".join(raw).replace(",", " ").split()))
    for name in names:
        if name.lower().startswith("pg_") or name.lower() == "information_schema":
            raise ConfigError("schemas", name, "is one of PostgreSQL's own schemas",
                              "List the schemas the app's tables are in (billing, audit)")
    if names and url is not None and url.get_backend_name() != "postgresql":
        raise ConfigError("schemas", ", ".join(names), f"{url.get_backend_name()} keeps no schemas of a run's own "
                          "(only PostgreSQL does)", "Remove the key")
    return names


def _parse_duration(key: str, raw: str) -> int:
    match = _DURATION.match(raw)
    if not match:
        raise ConfigError(
            key, raw, "not a duration", "Write it as a whole number with a unit: 500ms, 10s or 2min (0 turns it off)"
        )
    number, unit = int(match.group(1)), match.group(2)
    if unit is None and number != 0:
        raise ConfigError(key, raw, "the unit is missing", f"Write {number}s or {number}ms (0 turns it off)")
    ms = number * _UNITS_MS[unit or "ms"]
    if ms > MAX_TIMEOUT_MS:
        raise ConfigError(key, raw, "longer than the databases accept (about 24 days)",
                          "Write a shorter duration, or 0 to turn it off")
    return ms


#: what ``flask-session`` takes
FLASK_SESSION_SCOPES = ("app-context", "test")
#: the values of ``schema-cache`` (true and false are on and off)
SCHEMA_CACHE_CHOICES = ("auto", "on", "off")


def _parse_schema_cache(raw: str, source: str) -> str:
    """``schema-cache``: auto, on or off (true and false too)."""
    value = raw.strip().lower()
    if value in SCHEMA_CACHE_CHOICES:
        return value
    if value in _TRUE or value in _FALSE - {""}:
        return "on" if value in _TRUE else "off"
    raise ConfigError(source, raw, "is not auto, on or off",
                      "Write auto (the cache with the throwaway server only), on (with a dsn's server too) or off")


def _parse_choice(key: str, raw: str, choices: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise ConfigError.not_one_of(key, raw, choices)
    return value


def _parse_version(raw: str, source: str) -> int | None:
    if not raw.strip():
        return None
    if not re.fullmatch(r"\s*\d{2}\s*", raw) or int(raw) < 10:
        raise ConfigError(source, raw, "not a PostgreSQL major version", "Write the major version alone: 16, 17 or 18")
    return int(raw)


def _parse_bool(key: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(key, raw, "not a yes/no value", "Write true or false")


def _parse_paths(key: str, values: Iterable[str]) -> tuple[str, ...]:
    paths = []
    for value in values:
        for item in value.replace(",", " ").split():
            if not _PATH.match(item):
                raise ConfigError(key, item, "not a module:attribute path",
                                  "Write it like myapp.models:Base (one per line)")
            paths.append(item)
    return tuple(paths)


def _parse_dsn(raw: str, source: str) -> URL:
    try:
        url = make_url(raw.strip())
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(
            source, mask_url(raw), "not a database URL",
            "Write it as dialect+driver://user:password@host:port/database, e.g. "
            "postgresql+psycopg2://app@localhost:5432/app_test",
        ) from exc
    return with_installed_driver(url)


@dataclass(frozen=True)
class Settings:
    """Everything nose2-sqltx reads from ``[sqltx]`` and the environment.

    ====================  =======================================================
    ``dsn``               database URL (``SQLTX_DSN`` wins); none: a throwaway server
    ``metadata``          ``module:attribute`` paths of MetaData / declarative Bases
    ``fixtures``          ``module:callable`` paths, each called with the run's Connection
    ``lock_timeout_ms``   how long a statement waits for a lock (0: the server's default)
    ``statement_timeout_ms``  how long a statement may run (0: off; not on SQLite)
    ``pg_bindir``         where the throwaway server's binaries are (default: found)
    ``server_version``    the throwaway server's PostgreSQL major version (default: the first found)
    ``keep_server``       leave the throwaway server running for the next run
    ``server_tcp``        the throwaway server also listens on 127.0.0.1
    ``server_dir``        where the throwaway server's directory goes
    ``create_database``   MySQL/MariaDB: make a database for the run (else: the DSN's)
    ``reset_sequences``   every test (and class) starts from the same sequence values (not MySQL)
    ``schema_cache``      ``auto``, ``on`` or ``off``: build the schema from a recording of its last build
                          (PostgreSQL; auto: with the throwaway server), see :meth:`caches_schema`
    ``engines``           ``module:attribute`` paths of the app's Engines (or AsyncEngines), redirected for the run
    ``sessions``          paths of the app's sessionmakers, scoped_sessions, Flask-SQLAlchemy ``db``,
                          async_sessionmakers, async_scoped_sessions
    ``alembic``           an alembic.ini whose ``upgrade head`` makes the schema (instead of metadata)
    ``allow_databases``   database names the production guard lets through anyway
    ``schemas``           named schemas the app's tables use, besides the metadata's (PostgreSQL)
    ``show_queries``      a failed test's report ends with the SQL it sent
    ``check_migrations``  with ``alembic``: ``metadata`` is the models the migrated schema must match
    ``only_database_tests``  tests that are not DatabaseTests may not use the database
    ``flask_session``     ``app-context`` or ``test``: what a Flask-SQLAlchemy ``db.session`` is scoped to
    ``async_test_loop``   ``run`` or ``own``: the loop an ``AsyncDatabaseTest``'s coroutines run on
    ====================  =======================================================
    """

    url: URL | None
    metadata: tuple[str, ...] = ()
    fixtures: tuple[str, ...] = ()
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS
    pg_bindir: str | None = None
    server_version: int | None = None
    keep_server: bool = False
    server_tcp: bool = False
    server_dir: str | None = None
    create_database: bool = True
    reset_sequences: bool = False
    schema_cache: str = "auto"
    #: the part of the suite this run runs (None: all of it)
    shard: Shard | None = None
    #: the durations file, if any
    durations: str | None = None
    engines: tuple[str, ...] = ()
    sessions: tuple[str, ...] = ()
    alembic: str | None = None
    allow_databases: tuple[str, ...] = ()
    schemas: tuple[str, ...] = ()
    show_queries: bool = False
    check_migrations: bool = False
    only_database_tests: bool = False
    flask_session: str = "app-context"
    async_test_loop: str = "run"
    from_main_server: bool = False
    #: how many parallel workers share the database (0: not told; set by the main process)
    workers: int = 0
    #: where ``url`` came from, as errors name it: ``dsn``, the environment variable or the command-line option
    dsn_source: str = "dsn"
    #: the run's other databases, from ``[sqltx:<name>]`` sections: (name, their settings), in the file's order
    databases: tuple[tuple[str, Settings], ...] = ()

    def caches_schema(self, throwaway: bool) -> bool:
        """Whether the run keeps its schema builds in the schema cache: with
        ``schema-cache = auto``, when its server is a ``throwaway`` one
        (whose databases hold nothing but the run's, so that a recorded
        build is what a build from the source would be)."""
        return self.schema_cache == "on" or (self.schema_cache == "auto" and throwaway)

    def with_shard(self, raw: str, source: str) -> Settings:
        """These settings with the shard ``raw`` (``I/N`` or ``off``), given by ``source``."""
        return replace(self, shard=_parse_shard(raw, source, {}))

    def with_dsn(self, raw: str, source: str) -> Settings:
        """These settings with the database URL ``raw``, given by ``source``
        (a command-line option), validated as ``dsn`` is."""
        url = _parse_dsn(raw, source)
        backend_for(url, source, create_database=self.create_database)
        return replace(self, url=url, dsn_source=source)

    @classmethod
    def from_options(cls, options: Iterable[tuple[str, str]], environ: Mapping[str, str] | None = None,
                     databases: Iterable[tuple[str, Iterable[tuple[str, str]]]] = ()) -> Settings:
        """Validate ``(key, value)`` pairs from ``[sqltx]`` plus the environment.

        ``databases``: the run's other databases, ``(name, pairs)`` from each
        ``[sqltx:<name>]`` section (see :meth:`for_database`).

        Raises :class:`ConfigError` naming the first wrong key or value (a
        DSN's database or driver that no backend supports included).
        """
        environ = os.environ if environ is None else environ
        named = tuple((name, cls.for_database(name, pairs, environ)) for name, pairs in databases)
        return replace(cls._from_options(options, environ, ENVIRONMENT), databases=named)

    @classmethod
    def for_database(cls, name: str, options: Iterable[tuple[str, str]],
                     environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of the run's other database ``name``, from its
        ``[sqltx:<name>]`` section: the keys of :data:`DATABASE_KEYS`, its
        dsn from ``SQLTX_DSN_<NAME>`` over the file's."""
        environ = os.environ if environ is None else environ
        section = f"sqltx:{name}"
        if not _DATABASE_NAME.match(name):
            raise ConfigError(f"[{section}]", None, "is not a database name nose2-sqltx takes",
                              "Name it in lower case letters, digits and _, starting with a letter: "
                              "[sqltx:analytics]")
        options = list(options)
        for key, _ in options:
            if key.strip().lower() not in DATABASE_KEYS:
                if key.strip().lower() in PUBLIC_KEYS:
                    raise ConfigError(key.strip().lower(), None, "applies to the whole run, not to one of its "
                                      "databases", "Set it under [sqltx]", section=section)
                raise ConfigError(key.strip().lower(), None, "unknown key",
                                  f"Keys of [{section}]: {', '.join(DATABASE_KEYS)}", section=section)
        try:
            return cls._from_options(options, environ, {"dsn": NAMED_DSN_ENV.format(name.upper())})
        except ConfigError as exc:
            error = exc.in_section(section)
            if error is exc:
                raise
            raise error from exc

    @classmethod
    def _from_options(cls, options: Iterable[tuple[str, str]], environ: Mapping[str, str],
                      environment: Mapping[str, str]) -> Settings:
        values: dict[str, list[str]] = {}
        for key, value in options:
            key = key.strip().lower()
            if key not in KEYS:
                close = difflib.get_close_matches(key, PUBLIC_KEYS, n=1)
                hint = f"Did you mean {close[0]!r}? " if close else ""
                raise ConfigError(key, None, "unknown key", f"{hint}Known keys: {', '.join(PUBLIC_KEYS)}")
            values.setdefault(key, []).append(value)

        def one(key: str, default: str) -> str:
            return values.get(key, [default])[-1].strip()

        def duration(key: str, default_ms: int) -> int:
            return _parse_duration(key, values[key][-1]) if key in values else default_ms

        def with_env(key: str, default: str = "") -> tuple[str, str]:
            """(value, where it came from): the environment wins over the file."""
            env = environment.get(key)
            if env and environ.get(env, "").strip():
                return environ[env].strip(), env
            return one(key, default), key

        url = None
        raw_dsn, source = with_env("dsn")
        if raw_dsn:
            url = _parse_dsn(raw_dsn, source)
        keep, keep_source = with_env("keep-server", "false")
        metadata = _parse_paths("metadata", values.get("metadata", []))
        alembic = one("alembic", "") or None
        check_migrations = _parse_bool("check-migrations", one("check-migrations", "false"))
        if check_migrations and (alembic is None or not metadata):
            raise ConfigError(
                "check-migrations", "true", "needs alembic (the migrations that build the schema) and metadata "
                f"(the models to compare it with); {'alembic' if alembic is None else 'metadata'} is not set",
                "Set both, or remove check-migrations",
            )
        if alembic is not None and metadata and not check_migrations:
            raise ConfigError(
                "alembic", alembic, "is set together with metadata",
                "The schema comes from one of them: keep alembic (migrations) or metadata (create_all), not both; "
                "or set check-migrations = true to build it with alembic and compare it with the metadata",
            )
        if alembic is not None and not os.path.isfile(alembic):
            raise ConfigError(
                "alembic", alembic, "no such file",
                "Name your alembic.ini, relative to the directory nose2 runs in",
            )
        allow_raw, _ = with_env("allow-database")
        create_database = _parse_bool("create-database", one("create-database", "true"))
        if url is not None:
            backend_for(url, source, create_database=create_database)
        return cls(
            url=url,
            metadata=metadata,
            fixtures=_parse_paths("fixtures", values.get("fixtures", [])),
            lock_timeout_ms=duration("lock-timeout", DEFAULT_LOCK_TIMEOUT_MS),
            statement_timeout_ms=duration("statement-timeout", DEFAULT_STATEMENT_TIMEOUT_MS),
            pg_bindir=with_env("pg-bindir")[0] or None,
            server_version=_parse_version(*with_env("server-version")),
            keep_server=_parse_bool(keep_source, keep),
            server_tcp=_parse_bool("server-tcp", one("server-tcp", "false")),
            server_dir=with_env("server-dir")[0] or None,
            create_database=create_database,
            reset_sequences=_parse_bool("reset-sequences", one("reset-sequences", "false")),
            schema_cache=_parse_schema_cache(*with_env("schema-cache", "auto")),
            shard=_parse_shard(*with_env("shard"), environ),
            durations=one("durations", "") or None,
            engines=_parse_paths("engines", values.get("engines", [])),
            sessions=_parse_paths("sessions", values.get("sessions", [])),
            alembic=alembic,
            allow_databases=tuple(allow_raw.replace(",", " ").split()),
            schemas=_parse_schemas(values.get("schemas", []), url),
            show_queries=_parse_bool("show-queries", one("show-queries", "false")),
            check_migrations=check_migrations,
            only_database_tests=_parse_bool("only-database-tests", one("only-database-tests", "false")),
            flask_session=_parse_choice("flask-session", one("flask-session", "app-context"), FLASK_SESSION_SCOPES),
            async_test_loop=_parse_choice("async-test-loop", one("async-test-loop", ASYNC_TEST_LOOPS[0]),
                                          ASYNC_TEST_LOOPS),
            # set by the main process for its workers: the dsn is its throwaway server
            from_main_server=_parse_bool(MAIN_SERVER_KEY, one(MAIN_SERVER_KEY, "false")),
            workers=int(workers) if (workers := one(WORKERS_KEY, "0")).isdigit() else 0,
            dsn_source=source,
        )

    def __repr__(self) -> str:  # never show the password
        url = None if self.url is None else mask_url(self.url)
        return (
            f"Settings(url={url!r}, metadata={self.metadata!r}, fixtures={self.fixtures!r}, "
            f"lock_timeout_ms={self.lock_timeout_ms}, statement_timeout_ms={self.statement_timeout_ms}, "
            f"pg_bindir={self.pg_bindir!r}, keep_server={self.keep_server}, server_tcp={self.server_tcp}, "
            f"server_dir={self.server_dir!r}, create_database={self.create_database}, "
            f"reset_sequences={self.reset_sequences}, engines={self.engines!r}, "
            f"sessions={self.sessions!r}, alembic={self.alembic!r}, allow_databases={self.allow_databases!r}, "
            f"schemas={self.schemas!r})"
        )


def import_object(path: str, key: str) -> Any:
    """Import ``module:attribute`` (attribute may be dotted); errors name ``key``."""
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # a user module may fail in any way while importing
        raise ConfigError(
            key, path, f"cannot import module {module_name!r} ({type(exc).__name__}: {exc})",
            "Check the spelling and that the module is importable from the directory nose2 runs in",
        ) from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ConfigError(
                key, path, f"module {module_name!r} has no attribute {attr!r}", "Check the name after the colon"
            ) from exc
    return obj


class Loaded(NamedTuple):
    """The objects ``[sqltx]`` names, imported and checked."""

    metadata: list[Any]
    fixtures: list[Any]
    redirect: dict[str, Any]


def load_objects(settings: Settings) -> Loaded:
    """Import the MetaData objects, fixture callables and app objects that
    ``settings`` name; a wrong path or kind is a :class:`ConfigError`."""
    redirect = {path: _load_app_object("engines", path, ("engine", "AsyncEngine")) for path in settings.engines}
    redirect.update({path: _load_app_object("sessions", path, ("sessionmaker", "scoped_session", "Flask-SQLAlchemy",
                                                                "async_sessionmaker", "async_scoped_session"))
                     for path in settings.sessions})
    return Loaded([_load_metadata(path) for path in settings.metadata],
                  [_load_fixture(path) for path in settings.fixtures], redirect)


def _load_app_object(key: str, path: str, kinds: tuple[str, ...]) -> Any:
    obj = import_object(path, key)
    if redirect_kind(obj) not in kinds:
        wanted = ("an Engine or AsyncEngine" if key == "engines" else
                  "a sessionmaker, scoped_session, Flask-SQLAlchemy db, async_sessionmaker or async_scoped_session")
        other = "sessions" if key == "engines" else "engines"
        hint = f" (list it under {other})" if redirect_kind(obj) is not None else ""
        raise ConfigError(key, path, f"is a {type(obj).__name__}, not {wanted}{hint}",
                          "Point it at the object your app uses, e.g. myapp.db:engine or myapp:db")
    return obj


def _load_metadata(path: str) -> Any:
    obj = import_object(path, "metadata")
    if isinstance(obj, MetaData) or isinstance(getattr(obj, "metadata", None), MetaData):
        return obj
    raise ConfigError(
        "metadata", path, f"is a {type(obj).__name__}, not a MetaData or a declarative Base",
        "Point it at your MetaData or Base, e.g. myapp.models:Base",
    )


def _load_fixture(path: str) -> Any:
    obj = import_object(path, "fixtures")
    if not callable(obj):
        raise ConfigError(
            "fixtures", path, f"is a {type(obj).__name__}, not a callable",
            "Point it at a function that takes the run's Connection, e.g. myapp.testing:seed",
        )
    return obj


def _parse_shard(raw: str, source: str, environ: Mapping[str, str]) -> Shard | None:
    """``I/N``, ``off`` (the whole suite, whatever the CI says) or nothing
    (the CI's parallel job variables, if any)."""
    if raw.strip().lower() == "off":
        return None
    if raw.strip():
        return Shard.parse(raw, source)
    return shard_from_ci(environ)
