"""App transaction control mapped onto savepoints: every handle a test gets is the test transaction.

A :class:`SavepointConnection` is mixed into a driver's own connection class
(a real subclass, so that C extensions which type-check the connection, such
as psycopg2's ``register_uuid``, keep working). Once *armed*, transaction
control coming from application code is mapped onto savepoints instead of
ending the run's transaction:

==========================  ==================================================
app calls                   what the connection does
==========================  ==================================================
``commit()``                ``SAVEPOINT sqltx_txN`` (the scope's first commit),
                            then ``RELEASE SAVEPOINT sqltx_txN; SAVEPOINT sqltx_txN``
``rollback()``, ``close()`` ``ROLLBACK TO SAVEPOINT`` the last commit's marker
                            (or, before any commit, the scope's savepoint)
autocommit on               the same commit after every statement
isolation level, read-only  remembered and ignored (one transaction cannot
                            change its isolation level half way)
``COMMIT`` as SQL           detected right after it ran (the connection is
                            idle); every later statement is refused with
                            :class:`~nose2_sqltx.errors.TransactionEndedError`
                            until the owner repairs the run
==========================  ==================================================

Which savepoint statements to send is decided by :class:`SavepointStack`,
which holds no connection and sends nothing (its unit tests read its
output); the mixin decides *when*, from what the driver's cursors report.

Each open scope has a rollback target, innermost last: its own savepoint
until its first commit, its commit marker ``sqltx_txN`` (N: the scope's depth)
after it. Every savepoint name is unique among those in use: PostgreSQL and
SQLite would shadow an older savepoint of the same name, but MySQL and
MariaDB delete it.

Round trips are what a test's isolation costs, so a scope ends with a bare
``ROLLBACK TO SAVEPOINT``: that leaves its savepoint established and clean
(the *spare*), and the next scope at the same depth takes it over for free.
If anything ran in between, the spare is released and set afresh in one round
trip. The stack cannot grow: a scope further out releases the spare with its
own rollback, and a new savepoint is set only where no spare is left.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from .errors import ForkedProcessError, TransactionEndedError
from .messages import short_sql

__unittest = True

__all__ = ["CommitCheck", "StatementCheck", "SavepointStack", "SavepointConnection", "reported", "guarded_setting",
           "IDLE", "ACTIVE", "INTRANS", "INERROR", "UNKNOWN"]

#: commit markers are this prefix and the scope's depth
MARKER_PREFIX = "sqltx_tx"

# libpq transaction states; psycopg2 and psycopg 3 use the same numbers, the
# other backends' adapters map their drivers' state onto them.
IDLE, ACTIVE, INTRANS, INERROR, UNKNOWN = range(5)

#: the statements of one step, sent in one round trip where the driver allows
Step = tuple[str, ...]


class CommitCheck:
    """What a real COMMIT checks and a savepoint does not (deferred
    constraints), run at each app commit; one subclass per way of checking."""

    def run(self, connection: SavepointConnection) -> None:
        """Raise the driver's error, as its COMMIT would, if the check fails."""
        raise NotImplementedError

    def failed(self, connection: SavepointConnection) -> None:
        """After :meth:`run` raised: leave the test transaction as the
        database leaves a transaction whose COMMIT failed."""
        raise NotImplementedError


class StatementCheck(CommitCheck):
    """A check made of statements that fail as the COMMIT would; ``recover``
    is sent after they failed. As after a failed COMMIT (PostgreSQL), the
    work since the last commit is then gone."""

    def __init__(self, steps: Step, recover: Step = ()) -> None:
        self.steps = steps
        self.recover = recover

    def run(self, connection: SavepointConnection) -> None:
        connection.sqltx_send(self.steps)

    def failed(self, connection: SavepointConnection) -> None:
        connection.sqltx_send(self.recover)
        connection.rollback()


class SavepointStack:
    """The open scopes' rollback targets and the spare savepoint.

    Every method returns the statements that carry out the step, in order;
    nothing is sent from here.
    """

    def __init__(self) -> None:
        #: the rollback target of each open scope, innermost last; the run's
        #: (depth 0) has no savepoint of its own, only its marker
        self.targets: list[str] = [f"{MARKER_PREFIX}0"]
        #: a scope savepoint left established and clean, for the next scope
        self.spare: str | None = None

    def arm(self) -> Step:
        return (f"SAVEPOINT {self.targets[0]}",)

    def push(self, name: str, *, ran_since_spare: bool) -> Step:
        """Open a scope whose savepoint is ``name``."""
        if self.spare != name:
            step: Step = (f"SAVEPOINT {name}",)
        elif ran_since_spare:
            # Keep what ran since the spare was rolled back (merge it into
            # the scope outside) and start clean.
            step = (f"RELEASE SAVEPOINT {name}", f"SAVEPOINT {name}")
        else:
            step = ()
        self.spare = None
        self.targets.append(name)
        return step

    def pop(self, name: str) -> Step:
        """Undo the innermost scope; ``name`` stays established as the spare.

        Not releasing it is what lets the next scope start for free; the
        spare never piles up (see the module docstring), so neither do the
        locks PostgreSQL keeps per subtransaction.
        """
        del self.targets[-1]
        self.spare = name
        return (f"ROLLBACK TO SAVEPOINT {name}",)

    def keep(self) -> Step:
        """A commit: mark this point; a later rollback comes back here."""
        marker = f"{MARKER_PREFIX}{len(self.targets) - 1}"
        if self.targets[-1] == marker:
            step: Step = (f"RELEASE SAVEPOINT {marker}", f"SAVEPOINT {marker}")
        else:  # the scope's first commit
            step = (f"SAVEPOINT {marker}",)
            self.targets[-1] = marker
        # A deeper spare is now released (RELEASE above) or buried under the
        # new marker (at most one per scope, gone with the scope): not reusable.
        self.spare = None
        return step

    def undo(self) -> Step:
        """A rollback: back to the last commit (or the scope's start)."""
        self.spare = None  # a deeper spare is gone
        return (f"ROLLBACK TO SAVEPOINT {self.targets[-1]}",)

    def check_run(self) -> Step:
        """A statement that fails unless the run's transaction still stands."""
        return (f"ROLLBACK TO SAVEPOINT {self.targets[0]}",)


class SavepointConnection:
    """Mixin for a driver connection class; see the module docstring.

    A driver adapter provides ``_sqltx_exec`` (run SQL bypassing the
    mapping), ``_sqltx_status`` and the ``_sqltx_real_*`` methods; one whose
    driver cannot send several statements at once sets
    ``_sqltx_one_statement_per_call``; one that must refuse a statement before
    it runs overrides ``_sqltx_precheck``. The owner (the core) uses the
    public ``sqltx_*`` methods only.
    """

    _sqltx_one_statement_per_call: bool = False

    _sqltx_armed: bool = False
    _sqltx_quiet: bool = False  # the owner is about to roll back anyway
    _sqltx_dirty: bool = False  # a statement ran (or a cursor was made) since the last commit/rollback
    _sqltx_autocommit: bool = False
    _sqltx_ended: bool = False
    _sqltx_last: str | None = None
    _sqltx_settings: dict[str, Any] | None = None
    _sqltx_stack: SavepointStack
    _sqltx_pid: int = 0  # the process the connection was armed in: a forked child must not use it
    _sqltx_busy: bool = False  # inside a statement of the app's (what a signal cancels)
    _sqltx_stop: type[BaseException] | None = None  # a stop that came during that statement
    _sqltx_lost: bool = False  # the owner saw the server drop the connection
    #: one thread at a time talks to the driver (some, like mysqlclient, refuse two)
    _sqltx_lock: Any
    #: what a real COMMIT would check, run at each app commit
    _sqltx_commit_check: CommitCheck | None = None
    #: the app sent its own BEGIN (SQLAlchemy's savepoint recipe on SQLite) and has not ended it
    _sqltx_began = False

    # -- provided by the driver adapter -----------------------------------
    def _sqltx_exec(self, sql: str) -> None:
        raise NotImplementedError

    def _sqltx_precheck(self, statement: object) -> None:
        """Raise, before it runs, for a statement the backend cannot isolate."""

    def _sqltx_status(self) -> int:
        return int(self.info.transaction_status)  # type: ignore[attr-defined]

    def _sqltx_real_commit(self) -> None:
        raise NotImplementedError

    def _sqltx_real_rollback(self) -> None:
        raise NotImplementedError

    def _sqltx_real_close(self) -> None:
        raise NotImplementedError

    def _sqltx_alive(self) -> bool:
        """Whether the driver still has a connection to the server."""
        return True

    def _sqltx_new_lock(self) -> Any:
        """The lock one thread at a time talks to the driver under (reentrant)."""
        return threading.RLock()

    def _sqltx_send(self, step: Step) -> None:
        if not step:
            return
        with self._sqltx_lock:
            if self._sqltx_one_statement_per_call:
                for sql in step:
                    self._sqltx_exec(sql)
            else:
                self._sqltx_exec("; ".join(step))

    # -- the owner's API ----------------------------------------------------
    @property
    def sqltx_armed(self) -> bool:
        """Whether app transaction control is mapped onto savepoints now."""
        return self._sqltx_armed

    @property
    def sqltx_failed(self) -> bool:
        """Whether the transaction is in error (PostgreSQL: only a rollback brings it back)."""
        return self._sqltx_status() == INERROR

    @property
    def sqltx_busy(self) -> bool:
        """Whether a statement is running now (read from other threads)."""
        return self._sqltx_busy

    def sqltx_mark_lost(self) -> None:
        """The server dropped the connection: nothing is sent on it any more."""
        self._sqltx_lost = True

    def sqltx_defer_stop(self, stop: type[BaseException]) -> bool:
        """From a signal handler: if a statement is running (and being
        cancelled), raise ``stop`` when it returns, which leaves the driver's
        connection in order; False if none is running."""
        if not self._sqltx_busy:
            return False
        self._sqltx_stop = stop
        return True

    @property
    def sqltx_ended(self) -> bool:
        """True once the run's transaction was found ended behind the owner's back."""
        return self._sqltx_ended

    @property
    def sqltx_last_statement(self) -> str | None:
        """The statement that ended the transaction (shortened), if it was seen."""
        return self._sqltx_last

    def sqltx_execute(self, sql: str) -> None:
        """Run ``sql`` for the owner, bypassing the mapping."""
        self._sqltx_exec(sql)

    def sqltx_arm(self) -> None:
        """From now on, app transaction control maps onto savepoints."""
        self._sqltx_stack = SavepointStack()
        self._sqltx_lock = self._sqltx_new_lock()
        self._sqltx_send(self._sqltx_stack.arm())
        self._sqltx_pid = os.getpid()
        self._sqltx_armed = True
        self._sqltx_ended = False
        self._sqltx_last = None
        self._sqltx_dirty = False
        self._sqltx_autocommit = False
        self._sqltx_settings = {}

    def sqltx_lock(self) -> Any:
        """The lock under which one thread at a time talks to the driver."""
        return self._sqltx_lock

    def sqltx_send(self, step: Step) -> None:
        """Run the statements of ``step`` for the owner, in one round trip where the driver allows."""
        self._sqltx_send(step)

    def sqltx_check_commits(self, check: CommitCheck | None) -> None:
        """At each app commit, run ``check`` first (what only a real COMMIT
        would check, such as deferred constraints); if it fails, leave the
        work as the database leaves a failed COMMIT's (:meth:`CommitCheck.failed`)
        and raise the driver's error from ``commit()``."""
        self._sqltx_commit_check = check

    def sqltx_disarm(self) -> None:
        """Transaction control is real again (the owner's own, or none)."""
        self._sqltx_armed = False
        self._sqltx_quiet = False

    def sqltx_push(self, name: str) -> None:
        """Open a scope whose savepoint is ``name`` (one per depth)."""
        self._sqltx_check()
        self._sqltx_send(self._sqltx_stack.push(name, ran_since_spare=self._sqltx_dirty))
        self._sqltx_dirty = False
        self._sqltx_autocommit = False
        self._sqltx_began = False

    def sqltx_pop(self, name: str) -> None:
        """Undo everything since :meth:`sqltx_push`; ``name`` stays as the spare."""
        self._sqltx_check()
        self._sqltx_send(self._sqltx_stack.pop(name))
        self._sqltx_dirty = False
        self._sqltx_autocommit = False
        self._sqltx_began = False
        self._sqltx_settings = {}

    def sqltx_check_run(self) -> None:
        """Raise the driver's error unless the run's transaction still stands
        (catches what the cursors could not report, at the run's level)."""
        self._sqltx_send(self._sqltx_stack.check_run())

    def sqltx_mark_ended(self) -> None:
        """The owner found the transaction gone by a statement nobody saw."""
        self._sqltx_ended = True
        self._sqltx_last = None

    def sqltx_quiet(self) -> _Quiet:
        """A context: app commits and rollbacks are no-ops inside, as the owner
        rolls back right after."""
        # A plain object rather than a generator: it runs at every scope's end.
        return _Quiet(self)

    def sqltx_app_begin(self, nested: Callable[[], Exception]) -> None:
        """The app's own BEGIN: the test transaction stands for the app's, so
        it starts nothing, and fails with ``nested()`` where the database's
        would, in a transaction the app began and did not end (also after a
        commit that failed)."""
        with self._sqltx_lock:
            if self._sqltx_began:
                raise nested()
            self._sqltx_began = True

    def sqltx_real_rollback(self) -> None:
        self._sqltx_real_rollback()

    def sqltx_real_close(self) -> None:
        self._sqltx_real_close()

    # -- for the driver adapters' guarded settings --------------------------
    def sqltx_remember(self, name: str, value: Any) -> None:
        """Remember a connection setting instead of applying it (while armed)."""
        assert self._sqltx_settings is not None
        self._sqltx_settings[name] = value
        if name == "autocommit":
            self._sqltx_autocommit = bool(value)

    def sqltx_remembered(self, name: str, default: Any) -> Any:
        return (self._sqltx_settings or {}).get(name, default)

    # -- seen by the cursor wrappers (:func:`reported`) ---------------------
    def _sqltx_in_own_process(self) -> None:
        if self._sqltx_pid != os.getpid():
            raise ForkedProcessError(self._sqltx_pid, os.getpid())

    def _sqltx_check(self) -> None:
        self._sqltx_in_own_process()
        if self._sqltx_ended:
            # Refuse: with psycopg2 the next statement would run in autocommit.
            raise TransactionEndedError(self._sqltx_last, committed=False, refused=True)

    def _sqltx_before(self, statement: object) -> None:
        if self._sqltx_armed:
            self._sqltx_check()
            if not self._sqltx_quiet:
                self._sqltx_precheck(statement)
            self._sqltx_dirty = True

    def _sqltx_after(self, statement: object) -> None:
        if not self._sqltx_armed:
            return
        status = self._sqltx_status()
        if status == IDLE:
            # Only transaction-control SQL leaves an armed connection idle.
            # The statement itself is not failed: the owner reports the
            # damage once, when the scope ends.
            self._sqltx_ended = True
            self._sqltx_last = short_sql(statement)
        elif self._sqltx_autocommit and not self._sqltx_quiet:
            # Emulated autocommit: each statement's work is kept (or, if it
            # failed, undone) as a real autocommit connection would do.
            self._sqltx_send(self._sqltx_stack.keep() if status == INTRANS else self._sqltx_stack.undo())
            self._sqltx_dirty = False

    # -- the DB-API surface the application sees ---------------------------
    def commit(self) -> None:
        self._sqltx_commit()
        self._sqltx_began = False  # a commit that failed leaves the app's BEGIN standing, as SQLite's does

    def _sqltx_commit(self) -> None:
        if not self._sqltx_armed:
            return self._sqltx_real_commit()
        self._sqltx_in_own_process()
        if self._sqltx_ended or self._sqltx_quiet or not self._sqltx_dirty:
            return None
        # Like PostgreSQL, a commit of a failed transaction rolls it back.
        if self._sqltx_status() == INERROR:
            self._sqltx_send(self._sqltx_stack.undo())
        else:
            if self._sqltx_commit_check is not None:
                self._sqltx_run_commit_check(self._sqltx_commit_check)
            self._sqltx_send(self._sqltx_stack.keep())
        self._sqltx_dirty = False
        return None

    def _sqltx_run_commit_check(self, check: CommitCheck) -> None:
        try:
            with self._sqltx_lock:
                check.run(self)
        except Exception:
            # As a real COMMIT that fails: the app gets the database's error
            # from commit(), and the work is where the database leaves it.
            check.failed(self)
            raise

    def rollback(self) -> None:
        self._sqltx_rollback()
        self._sqltx_began = False

    def _sqltx_rollback(self) -> None:
        if not self._sqltx_armed:
            return self._sqltx_real_rollback()
        if self._sqltx_pid != os.getpid():
            # A forked child's statements were all refused: it has nothing to
            # undo, and the parent's transaction is not its to touch.
            return None
        if self._sqltx_ended or self._sqltx_quiet or not self._sqltx_dirty or self._sqltx_lost \
                or not self._sqltx_alive():
            # A lost connection has nothing left to roll back (SQLAlchemy
            # closes it when it sees the disconnect); the owner reports the loss.
            return None
        self._sqltx_send(self._sqltx_stack.undo())
        self._sqltx_dirty = False
        return None

    def close(self) -> None:
        if not self._sqltx_armed:
            return self._sqltx_real_close()
        # PEP 249: closing without commit rolls back; the connection itself is
        # the run's and stays open.
        return self.rollback()


# -- helpers for the driver adapters (nose2_sqltx/dialects) -----------------

def reported(conn: Any, query: Any, run: Callable[[], Any]) -> Any:
    """Run one statement through ``run()``, telling ``conn`` before and after."""
    lock = getattr(conn, "_sqltx_lock", None)
    if lock is None:  # never armed: not the run's yet
        return run()
    with lock:
        conn._sqltx_before(query)
        conn._sqltx_busy = True
        try:
            return run()
        finally:
            conn._sqltx_busy = False
            conn._sqltx_after(query)
            stop = conn._sqltx_stop
            if stop is not None:  # Ctrl-C or SIGTERM came while the statement ran
                conn._sqltx_stop = None
                raise stop()


def guarded_setting(real: Any, name: str, autocommit: Callable[[Any], bool] | None = None) -> property:
    """A connection setting that, while armed, is remembered instead of applied:
    drivers refuse to change it inside a transaction, roll back or commit.
    ``autocommit(value)``, if given, says whether the value switches the
    driver to autocommit, which the connection then emulates."""

    def get(self: Any) -> Any:
        if self.sqltx_armed:
            return self.sqltx_remembered(name, real.__get__(self))
        return real.__get__(self)

    def set_(self: Any, value: Any) -> None:
        if self.sqltx_armed:
            self.sqltx_remember(name, value)
            if autocommit is not None:
                self.sqltx_remember("autocommit", autocommit(value))
        else:
            real.__set__(self, value)

    return property(get, set_)


class _Quiet:
    """What :meth:`SavepointConnection.sqltx_quiet` returns."""

    __slots__ = ("_connection",)

    def __init__(self, connection: SavepointConnection) -> None:
        self._connection = connection

    def __enter__(self) -> None:
        self._connection._sqltx_quiet = True

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._connection._sqltx_quiet = False
