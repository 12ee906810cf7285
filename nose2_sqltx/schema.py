"""The run's schema: made from metadata or Alembic, then the fixtures; the tables it made.

:class:`Schema` creates the tables on a connection it is given (inside the
run's transaction, or committed where DDL is not transactional or the run
really commits), remembers which tables were new, and can drop or empty
exactly those again.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, MetaData, delete, event, inspect
from sqlalchemy.exc import SQLAlchemyError

from .dialects import Backend
from .drift import check_drift
from .errors import ConfigError, SetupError, UnsupportedObjectError
from .messages import exception_chain, first_line, where_raised
from .schemacache import SchemaCache, alembic_sources, metadata_ddl

__unittest = True

__all__ = ["Schema", "Fixture", "as_metadata", "untranslated_names"]

Fixture = Callable[[Connection], object]

#: what Alembic's env.py gets as sqlalchemy.url: a URL no dialect answers to
NO_ALEMBIC_URL = "nose2_sqltx_gives_env_py_a_connection://"


#: a string literal in SQL ('it''s' included)
_LITERAL = re.compile(r"'(?:[^']|'')*'")


def untranslated_names(tables: Iterable[tuple[str, str]]) -> Callable[[str], str | None] | None:
    """What finds, in a statement, one of ``tables`` (schema, table) named
    with its schema (``billing.ledger``, quoted or not, outside string
    literals): a name SQLAlchemy did not translate, so SQL text. None: no
    such tables."""
    names = [rf'"?{re.escape(schema)}"?\s*\.\s*"?{re.escape(table)}"?' for schema, table in tables]
    if not names:
        return None
    # not part of a longer name (the run's own sqltx_run_..._billing.ledger)
    pattern = re.compile(rf'(?<![\w."])(?:{"|".join(names)})(?![\w"])', re.IGNORECASE)

    def find(statement: str) -> str | None:
        found = pattern.search(_LITERAL.sub("''", statement))
        return found.group(0) if found else None

    return find


def as_metadata(obj: Any) -> MetaData:
    """``obj`` if it is a MetaData, else its ``.metadata`` (a declarative Base)."""
    if isinstance(obj, MetaData):
        return obj
    metadata = getattr(obj, "metadata", None)
    if isinstance(metadata, MetaData):
        return metadata
    raise UnsupportedObjectError(repr(obj), type(obj).__name__, "a MetaData or something with a .metadata "
                                 "(such as a declarative Base)")


class Schema:
    """``metadata`` (MetaData objects) or ``alembic`` (an alembic.ini) make the
    tables; ``fixtures`` are called, in order, with the connection after them."""

    def __init__(self, backend: Backend, masked_url: str, *, metadata: Sequence[MetaData] = (),
                 alembic: str | None = None, fixtures: Sequence[Fixture] = (),
                 models: Sequence[MetaData] = (), cache: SchemaCache | None = None) -> None:
        self.backend = backend
        self.masked_url = masked_url
        self.metadata = list(metadata)
        self.alembic = alembic
        #: check-migrations: what the migrated schema must match (see :mod:`nose2_sqltx.drift`)
        self.models = list(models)
        self.fixtures = list(fixtures)
        #: where builds inside the run's transaction are recorded and replayed from (None: never)
        self.cache = cache
        #: the run's own schema name (PostgreSQL), which recordings hold as a placeholder
        self.namespace: str | None = None
        self._created: list[str] = []
        #: the tables built in the run's stand-ins for named schemas, as (schema, table)
        self._in_stand_ins: list[tuple[str, str]] = []
        #: finds SQL text that names a table built in one of the run's
        #: stand-ins for named schemas (see :func:`untranslated_names`)
        self.untranslated: Callable[[str], str | None] | None = None
        backend.check_tables([t for m in self.metadata for t in m.tables.values()])
        _check_one_table_per_name(self.metadata)

    @property
    def created(self) -> tuple[str, ...]:
        """The tables the run made (the schema's, from metadata or migrations)."""
        return tuple(self._created)

    @property
    def table_count(self) -> int:
        """How many tables the schema has (for the summary)."""
        if self.metadata:
            return sum(len(m.tables) for m in self.metadata)
        return len(self._created) + len(self._in_stand_ins)

    def named_schemas(self) -> list[str]:
        """The schemas the tables name (``billing`` of ``billing.ledger``)."""
        return sorted({t.schema for m in self.metadata for t in m.tables.values() if t.schema})

    def create(self, conn: Connection, *, committed: bool, why: str | None = None) -> None:
        """Create the schema on ``conn``; remember which tables were new.

        Tables of the metadata's names that exist already are refused: the
        tests would see their rows and their columns instead of the tables the
        metadata describes (``create_all`` skips them), and with ``committed``
        (the run's tables outlive its transaction) they would be dropped with
        the run's; ``why`` says why they are committed, for that error.
        """
        if not self.metadata and self.alembic is None:
            return
        step = "creating the schema (" + ("alembic upgrade head" if self.alembic else "metadata") + ")"
        existing = set(inspect(conn).get_table_names())
        clash = self._existing(conn, existing)
        if clash and not committed:
            raise SetupError(
                step,
                f"tables {', '.join(clash)} already exist in {self.masked_url} (left by another program or an "
                "older version of the schema): the tests would see their rows and columns instead of the tables "
                "the metadata describes. Drop them, or point dsn at a database without them",
            )
        if clash and not self.backend.owns_database:
            raise SetupError(
                step,
                f"tables {', '.join(clash)} already exist in {self.masked_url}; "
                + (why or f"on {self.backend.display_name} the run creates its tables for real and drops "
                   "them at the end")
                + ", so it does not start on tables it did not make. Drop them (a killed run may have "
                "left them)" + ("" if why else " or let the run make its own database (remove "
                                 "create-database = false)"),
            )
        try:
            if self.cache is None or committed:
                self._make(conn)
            else:
                self.cache.build(conn, source=self._source(conn), key=lambda: self._key(conn),
                                 make=lambda: self._make(conn), namespace=self.namespace)
            if self.alembic is not None and self.models:
                check_drift(conn, self.models, self.alembic)
            conn.commit()
        except SQLAlchemyError as exc:
            reason = first_line(exc)
            advice = self.backend.explain_setup_failure(exc)
            if advice is not None:
                reason += f" ({advice})"
            # A run cancels other connections' waits on its locks before
            # lock-timeout (lockwait.py): "user request" is such a cancel.
            if self.backend.is_lock_timeout(exc) or (self.backend.is_cancel(exc) and "user request" in reason):
                reason += (" (another connection holds locks on these tables: most likely another test run on the "
                           f"same database that has not ended; {self.backend.concurrent_runs_fix})")
            raise SetupError(step, reason) from exc
        made = [name for name in inspect(conn).get_table_names() if name not in existing]
        self._created = list(dict.fromkeys(self._created + made))
        stand_ins = _stand_ins(conn)
        if stand_ins:
            self._in_stand_ins = [(schema, table) for schema, own in stand_ins.items()
                                  for table in inspect(conn).get_table_names(schema=own)]
            self.untranslated = untranslated_names(self._in_stand_ins)

    def _make(self, conn: Connection) -> None:
        for metadata in self.metadata:
            metadata.create_all(conn)
        if self.alembic is not None:
            with _schemas_made_as_stand_ins(conn):
                self._alembic_upgrade(conn, self.alembic)

    def _source(self, conn: Connection) -> str:
        """What the schema is built from, as the cache files its recordings by."""
        dialect = f"{conn.dialect.name}+{conn.dialect.driver}"
        if self.alembic is not None:
            return f"alembic {os.path.realpath(self.alembic)} {dialect}"
        return f"metadata {' '.join(sorted(t.fullname for m in self.metadata for t in m.tables.values()))} {dialect}"

    def _key(self, conn: Connection) -> list[object]:
        """Everything a build's statements depend on (see :mod:`nose2_sqltx.schemacache`)."""
        dialect = conn.dialect
        common: list[object] = [dialect.name, dialect.driver, (dialect.server_version_info or ())[:1],
                                sorted(_stand_ins(conn)), self.namespace is None]
        if self.alembic is not None:
            # (not the models of check-migrations: the check runs after every build, replayed or not)
            return [*common, alembic_sources(self.alembic)]
        return [*common, metadata_ddl(self.metadata, dialect)]

    def _existing(self, conn: Connection, default: set[str]) -> list[str]:
        """The metadata's tables that the database already holds (``default``:
        the names in the connection's default schema)."""
        names: dict[str | None, set[str]] = {None: default}
        found = []
        for metadata in self.metadata:
            for table in metadata.tables.values():
                # where the table goes: the run's stand-in for a named schema, if it has one
                schema = conn.schema_for_object(table)
                if schema not in names:
                    try:
                        names[schema] = set(inspect(conn).get_table_names(schema=schema))
                    except SQLAlchemyError:
                        conn.rollback()  # no such schema: nothing of it exists yet
                        names[schema] = set()
                if table.name in names[schema]:
                    found.append(table.fullname)
        return found

    def run_fixtures(self, conn: Connection, ended: Callable[[], str | None] = lambda: None) -> None:
        """Run the fixtures on ``conn``; ``ended()`` tells the statement that
        ended the run's transaction, if one did (a fixture's ``COMMIT`` as SQL)."""
        for fixture in self.fixtures:
            name = getattr(fixture, "__qualname__", repr(fixture))
            try:
                fixture(conn)
                conn.commit()
            except Exception as exc:
                raise SetupError(f"fixture {name}",
                                 f"{type(exc).__name__}: {first_line(exc)}{where_raised(exc)}") from exc
            statement = ended()
            if statement is not None:
                raise SetupError(
                    f"fixture {name}",
                    f"it ended the run's transaction with {statement!r} (as SQL), which would commit the schema "
                    "and the fixtures for good; nose2-sqltx dropped what it committed. Fixtures run inside the "
                    "run's transaction and their work is kept for every test: leave COMMIT and ROLLBACK out of "
                    "them (connection.commit() is fine)")

    def reflect_created(self, conn: Connection) -> MetaData:
        """The tables this run created that exist now, reflected (one catalog query)."""
        existing = set(inspect(conn).get_table_names())
        reflected = MetaData()
        reflected.reflect(conn, only=[name for name in self._created if name in existing])
        return reflected

    def drop_created(self, conn: Connection) -> tuple[str, ...]:
        """Drop the tables this run created that still exist (committed ones); return their names."""
        reflected = self.reflect_created(conn)
        if not reflected.tables:
            return ()
        tables = list(reversed(reflected.sorted_tables))
        reflected.drop_all(conn)
        conn.commit()
        return tuple(t.name for t in tables)

    @staticmethod
    def empty(conn: Connection, reflected: MetaData) -> None:
        """Delete every row of the ``reflected`` tables (from :meth:`reflect_created`)."""
        for table in reversed(reflected.sorted_tables):
            conn.execute(delete(table))
        conn.commit()

    @staticmethod
    def _alembic_upgrade(conn: Connection, path: str) -> None:
        """``alembic upgrade head`` on ``conn`` (env.py must use it, as the
        Alembic cookbook's "sharing a connection" recipe does)."""
        try:
            from alembic import command
            from alembic.config import Config
        except ImportError as exc:
            raise ConfigError("alembic", path, "Alembic is not installed",
                              "pip install alembic (or nose2-sqltx[alembic])") from exc
        config = Config(path)
        config.attributes["connection"] = conn
        # An env.py that ignores the connection would migrate whatever its own
        # URL names, for real: make it fail instead.
        config.set_main_option("sqlalchemy.url", NO_ALEMBIC_URL)
        try:
            command.upgrade(config, "head")
        except Exception as exc:
            if any(NO_ALEMBIC_URL.split(":")[0] in str(e) for e in exception_chain(exc)):
                raise SetupError(
                    "creating the schema (alembic upgrade head)",
                    f"the env.py of {path} opened its own connection instead of using the run's: in "
                    "run_migrations_online(), use config.attributes.get(\"connection\") when it is set "
                    "(Alembic's cookbook: \"Sharing a Connection across one or more programmatic "
                    "migration commands\")",
                ) from exc
            if isinstance(exc, (SQLAlchemyError, SetupError)):
                raise
            raise SetupError("creating the schema (alembic upgrade head)",
                             f"{type(exc).__name__}: {first_line(exc)}{where_raised(exc)}") from exc


def _check_one_table_per_name(metadata: Sequence[MetaData]) -> None:
    """Two MetaData objects that define a table of the same name: create_all
    would make the first and skip the second without a word, and code of the
    second would fail on the first's columns, or worse, run on them."""
    seen: dict[str, Any] = {}
    for one in metadata:
        for name, table in one.tables.items():
            first = seen.setdefault(name, table)
            if first is not table:
                columns = [", ".join(c.name for c in t.columns) for t in (first, table)]
                raise SetupError(
                    "creating the schema (metadata)",
                    f"two of the metadata define a table {name} (columns {columns[0]}; and {columns[1]}): the run "
                    "has one database, which holds one table of a name, so the second would be skipped and code "
                    "of the second would run on the first's columns. Give the tables different names or schemas; "
                    "tables of different databases cannot share one run yet",
                )


def _stand_ins(conn: Connection) -> dict[str, str]:
    """The run's stand-ins for named schemas, as ``conn`` translates them
    (none on a connection of real commits, whose tables are where they say)."""
    translate = conn.get_execution_options().get("schema_translate_map") or {}
    return {schema: own for schema, own in translate.items() if schema is not None}


@contextmanager
def _schemas_made_as_stand_ins(conn: Connection) -> Iterator[None]:
    """While migrations run, the run's stand-ins for the named schemas they
    use: SQLAlchemy translates what it builds (``op.create_table``), not
    Alembic's ALTER statements nor text (``op.execute``), so in every
    statement a name qualified by one of those schemas (``billing.ledger``,
    outside string literals) is given the stand-in's, and ``CREATE SCHEMA
    billing`` finds the stand-in, made already, instead of making
    ``billing`` in the run's transaction, where every other run making it
    too would wait for this one to end."""
    stand_ins = _stand_ins(conn)
    if not stand_ins:
        yield
        return
    folded = {schema.lower(): own for schema, own in stand_ins.items()}
    names = "|".join(re.escape(schema) for schema in stand_ins)
    create = re.compile(rf'^\s*CREATE\s+SCHEMA\s+(?:IF\s+NOT\s+EXISTS\s+)?"?({names})"?\s*;?\s*$', re.IGNORECASE)
    qualified = re.compile(rf"""({_LITERAL.pattern})|(?<![\w."])"?({names})"?\s*\.""", re.IGNORECASE)

    def own(schema: str) -> str:
        return stand_ins.get(schema) or folded[schema.lower()]

    def rewrite(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                executemany: bool) -> tuple[str, Any]:
        found = create.match(statement)
        if found:
            return f"CREATE SCHEMA IF NOT EXISTS {own(found.group(1))}", parameters
        return qualified.sub(lambda m: m.group(1) or f"{own(m.group(2))}.", statement), parameters

    event.listen(conn, "before_cursor_execute", rewrite, retval=True)
    try:
        yield
    finally:
        event.remove(conn, "before_cursor_execute", rewrite)
