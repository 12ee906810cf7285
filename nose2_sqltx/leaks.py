"""The leak watch: every statement of every Engine in the process, while a run is active.

A statement through one of the run's own engines is handed to the query log
of the innermost scope. A statement that writes (:func:`is_write`) through
any other engine would outlive the test, so it is refused before it runs
with :class:`~nose2_sqltx.errors.LeakError`, which names where the app holds
that engine (:func:`names_of`). An app may swallow the error (a view that
returns 500, a background task): the scope's end raises it again, unless a
test result already carries it.

Engines marked with :func:`unwatched` (a deliberate second connection, the
backends' own administrative engines) are let through.
"""

from __future__ import annotations

import re
import sys
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import scoped_session, sessionmaker

from .errors import LeakError
from .messages import exception_chain, mask_url, short_sql
from .redirect import factory_engines, is_flask_sqlalchemy

__unittest = True

__all__ = ["LeakWatch", "unwatched", "is_unwatched", "is_write", "names_of"]

#: engines whose writes the leak watch lets through
_unwatched: weakref.WeakSet[Engine] = weakref.WeakSet()

_WRITE = re.compile(
    r"^\s*(?:/\*.*?\*/\s*|--[^\n]*\n\s*)*"
    r"(INSERT|UPDATE|DELETE|MERGE|REPLACE|UPSERT|CREATE|DROP|ALTER|TRUNCATE|GRANT|REVOKE|COMMENT|COPY"
    r"|RENAME|LOCK|CALL|DO|VACUUM|REINDEX|CLUSTER|REFRESH)\b",
    re.IGNORECASE | re.DOTALL,
)
_CTE_WRITE = re.compile(r"^\s*WITH\b.*\b(INSERT|UPDATE|DELETE|MERGE)\b", re.IGNORECASE | re.DOTALL)


def unwatched(engine: Engine) -> Engine:
    """Mark ``engine`` as deliberately outside the test transaction; return it.

    For a test that needs a second connection on purpose (to hold a lock, to
    watch from outside): the leak check lets its writes through, and it keeps
    a connection of its own even on the run's database (it is not adopted
    into the test transaction). They are
    *not* rolled back by nose2-sqltx; undo them in the test (or use real
    commits, see ``DatabaseTest.real_commits``).
    """
    _unwatched.add(engine)
    # The dialect too: an engine's first connection is made before anyone
    # can ask about the engine (nose2_sqltx.adoption sees only the dialect).
    engine.dialect._sqltx_unwatched = True  # type: ignore[attr-defined]
    return engine


def is_unwatched(engine: Engine) -> bool:
    proxied = getattr(engine, "_proxied", None)  # engine.execution_options(...) copies
    return engine in _unwatched or (proxied is not None and proxied in _unwatched)


def is_write(statement: str, context: Any) -> bool:
    """Whether a statement changes the database (for SQL text: by its first word)."""
    if context is not None and (context.isinsert or context.isupdate or context.isdelete or context.isddl):
        return True
    return bool(_WRITE.match(statement) or _CTE_WRITE.match(statement))


def names_of(engine: Engine) -> tuple[str, ...]:
    """Where the loaded modules hold ``engine``: ``module:attr`` (for messages).

    Looks at module attributes that are the engine, a session factory bound
    to it, or a Flask-SQLAlchemy ``db`` one of whose engines it is.
    """
    target = getattr(engine, "_proxied", engine)
    found = []
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith(("sqlalchemy", "nose2_sqltx", "_")) or module is None:
            continue
        try:
            attrs = list(vars(module).items())
        except TypeError:
            continue
        for attr, value in attrs:
            try:
                if value is target:
                    found.append(f"{module_name}:{attr}")
                elif isinstance(value, (sessionmaker, scoped_session)) and target in factory_engines(value):
                    found.append(f"{module_name}:{attr}")
                elif is_flask_sqlalchemy(value) and any(
                    target in engines.values() for engines in value._app_engines.values()
                ):
                    found.append(f"{module_name}:{attr}")
            except Exception:  # noqa: BLE001 - odd module attributes must not hide the leak
                continue
    return tuple(dict.fromkeys(found))


class LeakWatch:
    """Listens to every Engine's statements from :meth:`start` to :meth:`stop`.

    ``is_run_engine(engine)`` says whether an engine is one of the run's;
    their statements go to ``log(connection, cursor, statement, context)``.
    ``elsewhere(engine)``: whether it is one of another database's of the
    same run (``[sqltx:<name>]``), whose own watch logs it. ``checking`` is switched off while the
    run really commits (other connections are then the point).
    """

    def __init__(self, *, is_run_engine: Callable[[Engine], bool],
                 log: Callable[[Any, Any, str, Any], None],
                 elsewhere: Callable[[Engine], bool] = lambda engine: False) -> None:
        self._is_run_engine = is_run_engine
        self._elsewhere = elsewhere
        self._log = log
        self.checking = True
        self.leaks: list[LeakError] = []
        # One bound method, kept: event.remove needs the very object listened with.
        self._listener = self._on_execute

    def start(self) -> None:
        event.listen(Engine, "before_cursor_execute", self._listener)

    def stop(self) -> None:
        if event.contains(Engine, "before_cursor_execute", self._listener):
            event.remove(Engine, "before_cursor_execute", self._listener)

    def mark(self) -> int:
        """A position to ask :meth:`unreported_since` about later (a scope's start)."""
        return len(self.leaks)

    def unreported_since(self, mark: int) -> LeakError | None:
        """The first leak since ``mark`` that no test result carries; it counts as reported now."""
        for leak in self.leaks[mark:]:
            if not leak.reported:
                leak.reported = True
                return leak
        return None

    @staticmethod
    def note_reported(exc: BaseException) -> None:
        """A test's result carries ``exc``: its leaks need not be raised again."""
        for cause in exception_chain(exc):
            if isinstance(cause, LeakError):
                cause.reported = True

    def _on_execute(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                    executemany: bool) -> None:
        engine = conn.engine
        if self._is_run_engine(engine):
            self._log(conn, cursor, statement, context)
        elif self._elsewhere(engine):
            return
        elif self.checking and not is_unwatched(engine) and is_write(statement, context):
            leak = LeakError(short_sql(statement), mask_url(engine.url), names_of(engine))
            self.leaks.append(leak)
            raise leak
