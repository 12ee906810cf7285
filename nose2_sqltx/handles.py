"""Several handles in one test: each SQLAlchemy Connection's work on the one connection.

A test may use two Sessions, or a Session and a Connection, of the run's
engines at once (the test's own and the app's, say). In production each has a
transaction of its own; here they share the test transaction, and SQLAlchemy
names savepoints per Connection (``sa_savepoint_1`` in each).
:class:`Handles` keeps, per scope, the order in which the handles wrote and
set savepoints, and before a handle's transaction control is sent:

- a savepoint whose name another handle's open savepoint already has gets a
  name of its own (MySQL and MariaDB would delete the older one, PostgreSQL
  and SQLite would roll back to the wrong one);
- a release, a rollback to a savepoint, a commit or a rollback goes ahead when
  it touches only the handle's own work, which gives the production result;
- one that would also undo another handle's writes, destroy its savepoints,
  or (a commit) keep writes the other handle later rolls back, is refused
  with :class:`~nose2_sqltx.errors.SharedTransactionError`, before anything
  reaches the database.

What cannot be told apart here, and is the same in production only when the
handles do not read each other's uncommitted rows: two handles see each
other's uncommitted rows (the README says so).

Threads (a pool of workers in the app) are handles too. Every statement of the
run's engines, and every commit or rollback together with the decision about
it, runs under one lock, so that no thread's statement lands between another
thread's decision and its rollback.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Engine, event

from .errors import SharedTransactionError
from .leaks import is_write

__unittest = True

__all__ = ["Handles"]

F = TypeVar("F", bound=Callable[..., Any])

#: frames that are not the app's: ours, SQLAlchemy's and the functions SQLAlchemy generates
#: ("<sqlalchemy generated ...>" in 2.1, "<string>" in 2.0)
_SKIP = (os.path.dirname(__file__), os.path.dirname(sys.modules["sqlalchemy"].__file__ or ""), "<sqlalchemy",
         "<string>")


def _caller() -> tuple[str, int]:
    """File and line of the innermost frame outside SQLAlchemy and nose2-sqltx."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_SKIP):
        frame = frame.f_back  # type: ignore[assignment]
    return (frame.f_code.co_filename, frame.f_lineno) if frame is not None else ("", 0)


def _locked(method: F) -> F:
    """Under the lock; in a forked child, not at all (returns None): the
    run's connection refuses the child's every use by itself."""

    @functools.wraps(method)
    def locked(self: Handles, *args: Any) -> Any:
        if os.getpid() != self._pid:
            return None
        with self._lock:
            return method(self, *args)

    return locked  # type: ignore[return-value]


@dataclass
class _Handle:
    #: where the test first used it (formatted only for a message)
    where: tuple[str, int]
    #: when it last wrote (0: not since its last commit or rollback)
    wrote: int = 0
    #: another handle's commit kept this one's writes: its own rollback cannot undo them
    kept_by: str | None = None

    @property
    def label(self) -> str:
        filename, line = self.where
        return f"the handle first used at {os.path.relpath(filename)}:{line}" if filename else "a handle"


@dataclass
class _Savepoint:
    handle: _Handle
    name: str  # as SQLAlchemy knows it
    sent: str  # as the database knows it
    at: int
    #: when the handle had last written as it was set (a rollback to it goes back there)
    wrote_before: int


@dataclass
class _ScopeState:
    handles: dict[int, _Handle] = field(default_factory=dict)
    savepoints: list[_Savepoint] = field(default_factory=list)
    #: where the last commit or rollback left the transaction: work after it is undone by a rollback
    mark: int = 0
    #: a call was refused: the test has failed with the reason, and its
    #: handles' rollbacks while closing are left to the scope's end
    refused: bool = False


class Handles:
    """The handles of the run's engines, tracked per scope; see the module docstring.

    ``is_run_engine(engine)``: whether an engine hands out the run's connection.
    """

    def __init__(self, is_run_engine: Callable[[Engine], bool], lock: Any = None) -> None:
        self._is_run_engine = is_run_engine
        self._state = _ScopeState()
        self._clock = 0
        self._listening = False
        #: per thread, the decision of its last commit or rollback event, for
        #: the dialect call right after it
        self._pending = threading.local()
        # Threads that use the run's engines at once (a pool of workers in the
        # app) share this state: each decision is made under the lock (with
        # an async driver, one that tasks take turns on as well: runloop.Turns).
        self._lock: Any = lock if lock is not None else threading.RLock()
        self._pid = os.getpid()

    # -- wiring ------------------------------------------------------------------
    def install(self, dialect: Any) -> None:
        """Take over the transaction calls of ``dialect``: the run engine's
        (which the redirected engines share), or an adopted engine's."""
        if getattr(dialect, "_sqltx_handles", None) is self:
            return
        savepoint, release, rollback_to = (dialect.do_savepoint, dialect.do_release_savepoint,
                                           dialect.do_rollback_to_savepoint)
        commit, rollback, close = dialect.do_commit, dialect.do_rollback, dialect.do_close
        dialect.do_savepoint = lambda conn, name: savepoint(conn, self._on_savepoint(conn, name) or name)
        dialect.do_release_savepoint = lambda conn, name: self._send(release, conn, name, self._on_release)
        dialect.do_rollback_to_savepoint = lambda conn, name: self._send(rollback_to, conn, name,
                                                                          self._on_rollback_to)
        dialect.do_commit = lambda dbapi_conn: self._finish(commit, dbapi_conn, "commit")
        dialect.do_rollback = lambda dbapi_conn: self._finish(rollback, dbapi_conn, "rollback")
        # The run's connection is never closed by an app's pool (NullPool
        # closes after every use): closing without a commit rolls back, as
        # PEP 249 says, under the same rule as a pool's reset.
        dialect.do_close = lambda dbapi_conn: self._close(close, dbapi_conn)
        dialect._sqltx_handles = self

    # Threads: each decision and the statement that carries it out happen
    # under the lock, and so does every statement of the run's engines (from
    # before_cursor_execute to after_cursor_execute), so that no thread's
    # statement runs between another's decision and its rollback.
    def _close(self, close: Callable[[Any], None], dbapi_conn: Any) -> None:
        if not getattr(dbapi_conn, "sqltx_armed", False):
            close(dbapi_conn)  # the run's own end, or a connection that is not the run's
            return
        with self._lock:
            if not self._skip("rollback"):
                dbapi_conn.rollback()

    def _send(self, call: Callable[[Any, str], None], conn: Any, asked: str,
              decide: Callable[[Any, str], str | None]) -> None:
        """``call`` with the savepoint's name as sent (None: the call is left out)."""
        if os.getpid() != self._pid:
            call(conn, asked)  # a forked child: the connection refuses it
            return
        with self._lock:
            sent = decide(conn, asked)
            if sent is not None:
                call(conn, sent)

    def _finish(self, call: Callable[[Any], None], dbapi_conn: Any, what: str) -> None:
        """The dialect's commit or rollback, right after its event (which took the lock)."""
        try:
            with self._lock:
                if not self._skip(what):
                    call(dbapi_conn)
        finally:
            self._let_go()

    def _hold(self) -> None:
        self._lock.acquire()
        self._pending.held = getattr(self._pending, "held", 0) + 1

    def _let_go(self) -> None:
        held = getattr(self._pending, "held", 0)
        if held:
            self._pending.held = held - 1
            self._lock.release()

    def _statement_done(self, *args: Any) -> None:
        statements = getattr(self._pending, "statements", 0)
        if statements:
            self._pending.statements = statements - 1
            self._lock.release()

    _EVENTS = ("commit", "rollback", "after_cursor_execute", "handle_error")

    def start(self) -> None:
        for name, listener in zip(self._EVENTS, self._listeners(), strict=True):
            event.listen(Engine, name, listener)
        self._listening = True

    def stop(self) -> None:
        if self._listening:
            for name, listener in zip(self._EVENTS, self._listeners(), strict=True):
                event.remove(Engine, name, listener)
            self._listening = False

    def _listeners(self) -> tuple[Callable[..., Any], ...]:
        return (self._on_commit, self._on_rollback, self._statement_done, self._statement_done)

    @_locked
    def reset(self) -> None:
        """A scope begins or ends: its handles' work is the scope's to undo."""
        if self._state.handles or self._state.savepoints:
            self._state = _ScopeState()

    # -- what the handles do -----------------------------------------------------
    def saw(self, conn: Any, statement: str, context: Any) -> None:
        """A statement through one of the run's engines (from the leak watch):
        from now until it has run, the lock is this thread's."""
        if os.getpid() != self._pid:
            return
        self._lock.acquire()
        self._pending.statements = getattr(self._pending, "statements", 0) + 1
        if is_write(statement, context):
            self._clock += 1
            self._handle(conn).wrote = self._clock

    def _handle(self, conn: Any) -> _Handle:
        handles = self._state.handles
        handle = handles.get(id(conn))
        if handle is None:
            handle = handles[id(conn)] = _Handle(_caller())
            conn._sqltx_handle = handle  # keeps id(conn) from being reused while tracked
        return handle

    @_locked
    def _on_savepoint(self, conn: Any, name: str) -> str:
        handle = self._handle(conn)
        taken = {s.sent for s in self._state.savepoints}
        sent, n = name, 1
        while sent in taken:
            n += 1
            sent = f"{name}_{n}"
        self._clock += 1
        self._state.savepoints.append(_Savepoint(handle, name, sent, self._clock, handle.wrote))
        return sent

    def _find(self, handle: _Handle, name: str) -> int | None:
        for i in range(len(self._state.savepoints) - 1, -1, -1):
            savepoint = self._state.savepoints[i]
            if savepoint.handle is handle and savepoint.name == name:
                return i
        return None

    @_locked
    def _on_release(self, conn: Any, name: str) -> str | None:
        handle = self._handle(conn)
        i = self._find(handle, name)
        if i is None:
            return name  # not one we saw set: the database says what it makes of it
        if self._refuse(self._conflict_after(i, handle, f"release of savepoint {name}", undo=False)):
            return None
        sent = self._state.savepoints[i].sent
        del self._state.savepoints[i:]
        return sent

    @_locked
    def _on_rollback_to(self, conn: Any, name: str) -> str | None:
        handle = self._handle(conn)
        i = self._find(handle, name)
        if i is None:
            return name
        if self._refuse(self._conflict_after(i, handle, f"rollback to savepoint {name}", undo=True)):
            return None
        savepoint = self._state.savepoints[i]
        handle.wrote = savepoint.wrote_before
        del self._state.savepoints[i:]
        return savepoint.sent

    def _conflict_after(self, i: int, handle: _Handle, action: str, *, undo: bool) -> SharedTransactionError | None:
        conflict = self._conflict_savepoints(handle, action, start=i + 1)
        if conflict is None and undo:
            return self._conflict_writes(self._state.savepoints[i].at, handle, action)
        return conflict

    def _conflict_writes(self, since: int, handle: _Handle, action: str) -> SharedTransactionError | None:
        for other in self._state.handles.values():
            if other is not handle and other.wrote > since:
                return SharedTransactionError(action, handle.label, other.label, "undo the uncommitted writes")
        return None

    def _conflict_savepoints(self, handle: _Handle, action: str, start: int = 0) -> SharedTransactionError | None:
        """Another handle's savepoint open (from ``start`` on) that ``action`` would destroy."""
        for savepoint in self._state.savepoints[start:]:
            if savepoint.handle is not handle:
                return SharedTransactionError(action, handle.label, savepoint.handle.label,
                                              f"destroy the open savepoint {savepoint.name}")
        return None

    def _refuse(self, error: SharedTransactionError | None) -> bool:
        """Raise ``error``, the scope's first; after that, return True: the
        call is left out (the test has failed with the reason, and what
        follows is its handles being closed; the scope's end undoes all)."""
        if error is None:
            return False
        if self._state.refused:
            return True
        self._state.refused = True
        self._pending.skip = None
        raise error

    # A handle's commit or rollback: SQLAlchemy's event names the handle, the
    # dialect's do_commit/do_rollback right after it does the work. A handle
    # that wrote nothing since the last commit or rollback has nothing to keep
    # or undo, as in production: while another handle's writes are at stake,
    # its call is not sent at all.
    @_locked
    def _on_commit(self, conn: Any) -> None:
        if self._is_run_engine(conn.engine):
            self._decide_holding(self._decide_commit, conn)

    def _decide_commit(self, conn: Any) -> None:
        handle = self._handle(conn)
        nothing_to_keep = self._others_wrote(handle) and not handle.wrote
        if nothing_to_keep or self._refuse(self._conflict_savepoints(handle, "commit")):
            self._leave_out(handle)
            return
        for other in self._state.handles.values():
            if other is not handle and other.wrote > self._state.mark:
                other.kept_by = handle.label
        self._end_transaction(handle)

    @_locked
    def _on_rollback(self, conn: Any) -> None:
        # SQLAlchemy calls no dialect rollback for a connection that is closed or invalid
        if self._is_run_engine(conn.engine) and getattr(conn, "_still_open_and_dbapi_connection_is_valid", True):
            self._decide_holding(self._decide_rollback, conn)

    def _decide_holding(self, decide: Callable[[Any], None], conn: Any) -> None:
        """``decide(conn)``, keeping the lock until the dialect's commit or
        rollback right after it has run (:meth:`_finish` lets it go)."""
        self._hold()
        try:
            decide(conn)
        except BaseException:
            self._let_go()
            raise

    def _decide_rollback(self, conn: Any) -> None:
        handle = self._handle(conn)
        if self._others_wrote(handle) and not handle.wrote and not self._failed(conn):
            self._leave_out(handle)
            return
        conflict = self._conflict_savepoints(handle, "rollback") or self._conflict_writes(self._state.mark, handle,
                                                                                         "rollback")
        if conflict is None and handle.kept_by is not None and handle.wrote:
            conflict = SharedTransactionError("rollback", handle.label, handle.kept_by,
                                              "leave its writes in place, because they were kept by the commit")
        if self._refuse(conflict):
            self._leave_out(handle)
            return
        self._end_transaction(handle)

    def _leave_out(self, handle: _Handle) -> None:
        """The handle's commit or rollback is not sent; SQLAlchemy forgets its savepoints."""
        self._pending.skip = True
        self._forget_savepoints(handle)

    @_locked
    def _skip(self, what: str) -> bool:
        """Whether the dialect's commit or rollback is to be left out."""
        pending: bool | None = getattr(self._pending, "skip", None)
        self._pending.skip = None
        if pending is not None:
            return pending
        # Not a handle's own call: the pool resetting a connection that had no
        # transaction (a Session closes its transaction first, then its
        # connection), or a raw DB-API connection. Other handles' writes and
        # savepoints are not its to undo.
        return what == "rollback" and (bool(self._state.savepoints) or self._others_wrote(None))

    def _others_wrote(self, handle: _Handle | None) -> bool:
        mark = self._state.mark
        return any(other.wrote > mark for other in self._state.handles.values() if other is not handle)

    @staticmethod
    def _failed(conn: Any) -> bool:
        """Whether the transaction is in error: only a real rollback brings it back."""
        try:
            return bool(conn.connection.dbapi_connection.sqltx_failed)
        except Exception:  # noqa: BLE001 - a connection that cannot say needs its rollback
            return True

    def _forget_savepoints(self, handle: _Handle) -> None:
        self._state.savepoints = [s for s in self._state.savepoints if s.handle is not handle]

    def _end_transaction(self, handle: _Handle) -> None:
        self._pending.skip = False
        self._forget_savepoints(handle)
        handle.wrote = 0
        handle.kept_by = None
        self._clock += 1
        self._state.mark = self._clock
