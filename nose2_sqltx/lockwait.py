"""Other connections never wait on the test transaction's locks for longer than lock-timeout.

The run's transaction holds its locks for the whole run. A connection the
run does not own (an engine the app made and the config does not redirect,
an ``unwatched`` engine, a thread's own connection, ``psql`` run by a test)
that waits for one of them would wait until the run ends. One guard per
kind of database keeps such waits within ``lock-timeout``:

- :class:`Watchdog` (PostgreSQL): a thread with a connection of its own
  cancels every statement, of any client, that has waited that long for a
  lock the run's connection holds (``pg_blocking_pids``).
- :class:`SessionTimeouts` (MySQL/MariaDB, SQLite): every connection this
  process's SQLAlchemy engines make to the run's server (file) gets the
  lock timeout as a session setting. Clients the plugin cannot reach (another
  process, a driver used without SQLAlchemy) keep the server's own.

In this process, such a statement then fails with :class:`LockWaitError`,
which names the test transaction as the holder.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from .dialects import Backend
from .errors import LockWaitError
from .leaks import unwatched
from .messages import first_line, short_sql

__unittest = True

__all__ = ["LockGuard", "SessionTimeouts", "Watchdog", "lock_guard"]


class LockGuard:
    """Keeps other connections' waits on the run's locks within ``lock_timeout_ms``."""

    def __init__(self, backend: Backend, url: URL, masked_url: str, lock_timeout_ms: int) -> None:
        self.backend = backend
        self.url = url
        self.masked_url = masked_url
        self.lock_timeout_ms = lock_timeout_ms
        self._run_dbapi: Any = None

    def start(self, run_dbapi: Any) -> None:
        """Guard the run whose connection is ``run_dbapi``."""
        self._run_dbapi = run_dbapi
        event.listen(Engine, "handle_error", self._on_error)

    def stop(self) -> None:
        if event.contains(Engine, "handle_error", self._on_error):
            event.remove(Engine, "handle_error", self._on_error)
        self._run_dbapi = None

    #: whether an ended wait is known to have been for the run's lock
    certain = False

    def _on_error(self, context: Any) -> None:
        try:
            dbapi = context.connection.connection.dbapi_connection
        except Exception:  # noqa: BLE001 - no connection left to judge (closed, invalidated)
            return
        if dbapi is None or dbapi is self._run_dbapi or not self.backend.shares_locks_with(context.engine.url):
            return
        if self._ended_wait(dbapi, context.original_exception):
            raise LockWaitError(short_sql(context.statement or ""), self.masked_url, self.lock_timeout_ms,
                                first_line(context.original_exception),
                                certain=self.certain) from context.original_exception

    def _ended_wait(self, dbapi: Any, exc: BaseException) -> bool:
        """Whether ``exc`` on another connection ``dbapi`` is a wait this guard ended."""
        raise NotImplementedError


class Watchdog(LockGuard):
    """Cancels the statements that have waited ``lock_timeout_ms`` for the run's locks (PostgreSQL)."""

    certain = True

    def __init__(self, backend: Backend, url: URL, masked_url: str, lock_timeout_ms: int) -> None:
        super().__init__(backend, url, masked_url, lock_timeout_ms)
        # Checked this often, and cancelled once they waited this long: every
        # wait ends before lock-timeout has passed.
        self.interval_s = min(1.0, max(0.02, lock_timeout_ms / 4000))
        self._older_than_ms = max(0, lock_timeout_ms - int(self.interval_s * 1000))
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._engine: Engine | None = None
        #: backends whose wait was cancelled (for the error in this process)
        self.cancelled: set[int] = set()

    def start(self, run_dbapi: Any) -> None:
        super().start(run_dbapi)
        run_pid = self.backend.backend_pid(run_dbapi)
        self._engine = unwatched(self.backend.create_engine(self.url, side=True, poolclass=NullPool))
        conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self._stopped.clear()
        self._thread = threading.Thread(target=self._watch, args=(conn, run_pid), name="nose2-sqltx lock watchdog",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        super().stop()

    def _watch(self, conn: Any, run_pid: int) -> None:
        query = self.backend.blocked_by_sql()
        assert query is not None
        try:
            while not self._stopped.wait(self.interval_s):
                waiting = conn.execute(text(query), {"run": run_pid, "ms": self._older_than_ms}).scalars().all()
                for pid in waiting:
                    self.cancelled.add(int(pid))
                    conn.execute(text("SELECT pg_cancel_backend(CAST(:pid AS integer))"), {"pid": int(pid)})
        except Exception:  # noqa: BLE001 - the run's own connection reports a lost server
            pass
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def _ended_wait(self, dbapi: Any, exc: BaseException) -> bool:
        return self.backend.is_cancel(exc) and self.backend.backend_pid(dbapi) in self.cancelled


class SessionTimeouts(LockGuard):
    """Gives every connection of this process's engines to the run's server
    (file) the lock timeout as a session setting (MySQL/MariaDB, SQLite)."""

    _DONE = "sqltx_lock_timeout"

    def start(self, run_dbapi: Any) -> None:
        super().start(run_dbapi)
        event.listen(Engine, "engine_connect", self._on_connect)

    def stop(self) -> None:
        if event.contains(Engine, "engine_connect", self._on_connect):
            event.remove(Engine, "engine_connect", self._on_connect)
        super().stop()

    def _on_connect(self, conn: Any) -> None:
        info = conn.connection.info  # one per DB-API connection: looked at once
        if info.get(self._DONE):
            return
        info[self._DONE] = True
        if conn.connection.dbapi_connection is self._run_dbapi or not self.backend.shares_locks_with(conn.engine.url):
            return
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            for sql in self.backend.other_session_sql(self.lock_timeout_ms):
                cursor.execute(sql)
        finally:
            cursor.close()

    def _ended_wait(self, dbapi: Any, exc: BaseException) -> bool:
        return self.backend.is_lock_timeout(exc)


def lock_guard(backend: Backend, url: URL, masked_url: str, lock_timeout_ms: int) -> LockGuard | None:
    """The guard for ``backend``'s database, or None when ``lock_timeout_ms`` is 0 (waits are not limited)."""
    if not lock_timeout_ms:
        return None
    kind = Watchdog if backend.blocked_by_sql() is not None else SessionTimeouts
    return kind(backend, url, masked_url, lock_timeout_ms)
