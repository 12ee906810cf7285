"""Engines the app makes during the run, on the run's database, join the test transaction.

Apps built with factories make their engine lazily (per app, per request, a
migration tool's ``env.py`` with ``poolclass=NullPool``), where the config
cannot name it. Every engine asks its dialect for a DB-API connection through
SQLAlchemy's ``do_connect`` event; :class:`Adoption` listens to it for every
Engine of the process and, when the new connection would go to the run's
database (the same driver, host, port, database and user), hands over the
run's own connection instead. The engine is the app's (its options, its
events); only its connections are the test transaction, with the same
transaction control as the run's own engines (:mod:`~nose2_sqltx.handles`),
and the run's ``schema_translate_map`` (its stand-ins for named schemas) on
top of the engine's own.
An engine on another database is left alone, and the leak watch refuses its
writes as before; so is an engine marked :func:`~nose2_sqltx.leaks.unwatched`
(a deliberate second connection).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import URL

from .handles import Handles
from .redirect import translate_over

__unittest = True

__all__ = ["Adoption"]

#: the connection arguments that say which database a connection goes to
_WHERE = ("host", "port", "dbname", "database", "db", "user", "username", "unix_socket")


def _where(dialect: Any, cargs: Any, cparams: dict[str, Any]) -> tuple[Any, ...]:
    return (dialect.name, dialect.driver, tuple(cargs),
            tuple((key, str(cparams.get(key))) for key in _WHERE if cparams.get(key) is not None))


class Adoption:
    """From :meth:`start` to :meth:`stop`: new connections of any Engine that
    go where the run's database is are the run's connection, while
    ``connection()`` gives one (None: not now, e.g. during real commits)."""

    def __init__(self, handles: Handles) -> None:
        self._handles = handles
        self._targets: set[tuple[Any, ...]] = set()
        self._connection: Callable[[], Any] | None = None
        self._dialects: weakref.WeakSet[Any] = weakref.WeakSet()
        self._schema_map: dict[str, str] = {}

    def start(self, urls: list[URL], run_dialect: Any, connection: Callable[[], Any],
              schema_map: dict[str, str] | None = None) -> None:
        """``urls``: what the app may call the run's database (the DSN, and
        the URL the run connects to, where they differ); ``schema_map``: the
        run's stand-ins for named schemas, which adopted engines translate to."""
        for url in urls:
            if run_dialect.name == "sqlite" and url.database in (None, "", ":memory:"):
                continue  # every sqlite:// engine is a database of its own, as in production
            cargs, cparams = run_dialect.create_connect_args(url)
            self._targets.add(_where(run_dialect, cargs, cparams))
        if not self._targets:
            return
        self._connection = connection
        run_dialect._sqltx_run = True  # its own reconnects are not the app's
        event.listen(Engine, "do_connect", self._on_connect)
        if schema_map:
            self._schema_map = dict(schema_map)
            event.listen(Engine, "engine_connect", self._on_engine_connect)

    def stop(self) -> None:
        if event.contains(Engine, "do_connect", self._on_connect):
            event.remove(Engine, "do_connect", self._on_connect)
        if event.contains(Engine, "engine_connect", self._on_engine_connect):
            event.remove(Engine, "engine_connect", self._on_engine_connect)
        self._connection = None
        self._targets = set()

    def adopted(self, engine: Engine) -> bool:
        """Whether ``engine``'s connections are the run's (its dialect was given it)."""
        return engine.dialect in self._dialects

    def _on_engine_connect(self, conn: Any) -> None:
        # After the pool's connect: a new engine's first Connection is adopted by now.
        if self.adopted(conn.engine):
            own = conn.get_execution_options().get("schema_translate_map")
            conn.execution_options(schema_translate_map=translate_over(self._schema_map, own))

    def _on_connect(self, dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        if self._connection is None or getattr(dialect, "_sqltx_run", False) or \
                getattr(dialect, "_sqltx_unwatched", False):
            return None
        if _where(dialect, cargs, cparams) not in self._targets:
            return None
        dbapi = self._connection()
        if dbapi is None:
            return None
        self._handles.install(dialect)
        self._dialects.add(dialect)
        return dbapi
