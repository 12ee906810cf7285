"""The run's one connection: an Engine whose pool hands it to everyone.

:class:`RunConnection` makes a SQLAlchemy Engine whose every checkout is the
same :class:`~nose2_sqltx.savepoints.SavepointConnection`, so Sessions,
Connections and the app's redirected engines all share the run's
transaction. :func:`connect_errors` turns a refused connection into one
of our errors, with no password in it. The connection
is made as the app's engines make theirs (:mod:`nose2_sqltx.connect_setup`).
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool

from .connect_setup import ConnectSetup
from .dialects import Backend
from .errors import ConnectionLostError, DatabaseUnavailableError
from .interrupts import StatementCanceller
from .messages import first_line, mask_url, scrub_password
from .savepoints import SavepointConnection

__unittest = True

__all__ = ["RunConnection", "connect_errors", "defer_stop"]


class RunPool(StaticPool):
    """The run's one connection, for every engine that points at it.

    App code may call ``engine.dispose()`` (an app factory, a fork guard):
    that must not close the run's connection, nor make the engine open a new
    one outside the test transaction. Only :meth:`RunConnection.close` disposes it.
    """

    _sqltx_closing = False

    def dispose(self) -> None:
        if self._sqltx_closing:
            super().dispose()

    def recreate(self) -> RunPool:
        return self


@contextmanager
def connect_errors(url: URL, setting: str | None = None) -> Iterator[None]:
    """Turn a failed connection into our error (a missing driver is refused
    earlier, where the backend is made); ``setting``: where the URL is set,
    for the fix (default: ``dsn``, or its environment variable)."""
    try:
        yield
    except DBAPIError as exc:
        reason = scrub_password(url, exc.orig or exc)
        raise (DatabaseUnavailableError(mask_url(url), reason) if setting is None else
               DatabaseUnavailableError(mask_url(url), reason, setting)) from None


#: the run connections of this process, for the child of a fork
_live: weakref.WeakSet[RunConnection] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for connection in list(_live):
        connection.detach_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


def defer_stop(stop: type[BaseException]) -> bool:
    """From a signal handler (Ctrl-C, SIGTERM): if a run's connection is in
    a statement, which the signal is cancelling, raise ``stop`` as that
    statement returns; False if none is, and the handler should raise now."""
    return any(connection.dbapi.sqltx_defer_stop(stop) for connection in list(_live))


class RunConnection:
    """The Engine of the run (``engine``) and its one DB-API connection (``dbapi``).

    ``url`` is what to connect to (the backend's run URL); ``masked_url`` is
    what messages call the database.
    """

    def __init__(self, url: URL, backend: Backend, masked_url: str, setup: ConnectSetup | None = None) -> None:
        self.masked_url = masked_url
        #: the driver's own account of the first disconnect seen (later errors only echo it)
        self.lost_reason: str | None = None
        setup = setup or ConnectSetup()
        self.engine: Engine = backend.create_engine(url, run=True, poolclass=RunPool,
                                                    connect_args=dict(setup.connect_args))
        setup.install(self.engine)
        event.listen(self.engine, "handle_error", self._on_error)
        with self.engine.connect() as conn:
            dbapi = conn.connection.dbapi_connection
        assert isinstance(dbapi, SavepointConnection)
        self.dbapi: SavepointConnection = dbapi
        self._backend: Backend = backend
        _live.add(self)
        # Ctrl-C and SIGTERM reach a test blocked in a statement (see interrupts.py).
        self._canceller: StatementCanceller = StatementCanceller(self._cancel_statement)
        self._canceller.start()

    def _cancel_statement(self) -> None:
        if self.dbapi.sqltx_busy:
            try:
                self._backend.cancel(self.dbapi)
            except Exception:  # noqa: BLE001 - the signal's handler still stops the run
                pass

    def detach_in_child(self) -> None:
        """In a forked child: point the child's copy of the socket at
        /dev/null. Every use there is refused (the connection knows its
        process), and a close by the driver (at the child's exit) says
        goodbye to /dev/null instead of ending the parent's session."""
        fd = self._backend.socket_fd(self.dbapi)
        if fd is None:
            return
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)

    def owns(self, engine: Engine) -> bool:
        """Whether ``engine`` hands out this connection (the run's engine, a redirected one)."""
        return engine.pool is self.engine.pool

    def lost(self, exc: BaseException) -> ConnectionLostError | None:
        """``exc`` as a lost connection, if that is what it is (SQLAlchemy's own
        disconnect detection, per dialect), else None."""
        orig = getattr(exc, "orig", exc)
        dbapi_errors = getattr(self.engine.dialect.dbapi, "Error", None)
        if dbapi_errors is None or not isinstance(orig, dbapi_errors):
            return None
        if not self.engine.dialect.is_disconnect(orig, self.dbapi, None):  # type: ignore[arg-type]
            return None
        return ConnectionLostError(self.masked_url, self.lost_reason or first_line(orig))

    def _on_error(self, context: Any) -> None:
        dbapi = getattr(self, "dbapi", None)  # not yet while connecting
        if context.is_disconnect and dbapi is not None and \
                isinstance(context.original_exception, (asyncio.CancelledError, KeyboardInterrupt)) and \
                dbapi.sqltx_armed and dbapi._sqltx_alive():
            # A cancelled await (asyncio.wait_for, a cancelled task) or a stop
            # (Ctrl-C) in a statement: SQLAlchemy would give the connection up,
            # but the driver cancelled the statement and the connection goes
            # on; the run's transaction is the run's to end.
            context.is_disconnect = False
            return
        if context.is_disconnect:
            if self.lost_reason is None:
                self.lost_reason = first_line(context.original_exception)
            if dbapi is not None:
                dbapi.sqltx_mark_lost()  # SQLAlchemy's clean-up that follows must not talk to it

    def close(self) -> None:
        """Close the connection for real and dispose of the engine."""
        self._canceller.stop()
        try:
            self.dbapi.sqltx_disarm()
            self.dbapi.sqltx_real_close()
        finally:
            pool = self.engine.pool
            if isinstance(pool, RunPool):
                pool._sqltx_closing = True
            self.engine.dispose()
