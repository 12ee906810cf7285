"""The guarded DB-API connection: every handle a test gets is the test transaction.

A :class:`Guard` is mixed into a driver's own connection class (a real
subclass, so that C extensions which type-check the connection, such as
psycopg2's ``register_uuid``, keep working). Once *armed*, transaction control
coming from application code is mapped onto savepoints instead of ending the
run's transaction:

==========================  ==================================================
app calls                   what the guard does
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

from typing import Any

from .errors import TransactionEndedError

__unittest = True

TX_SAVEPOINT = "sqltx_tx"

# libpq transaction states; psycopg2 and psycopg 3 use the same numbers, the
# other backends' adapters map their drivers' state onto them.
IDLE, ACTIVE, INTRANS, INERROR, UNKNOWN = range(5)


class Guard:
    """Mixin for a driver connection class; see the module docstring.

    A driver adapter provides ``_sqltx_exec`` (run SQL bypassing the guard),
    ``_sqltx_status`` and the ``_sqltx_real_*`` methods; one whose driver
    cannot send several statements at once sets ``_sqltx_one_statement_per_call``.
    """

    _sqltx_one_statement_per_call: bool = False

    _sqltx_armed: bool = False
    _sqltx_quiet: bool = False  # the owner is about to roll back anyway
    _sqltx_dirty: bool = False  # a cursor was made since the last commit/rollback
    _sqltx_autocommit: bool = False
    _sqltx_ended: bool = False
    _sqltx_last: str | None = None
    _sqltx_settings: dict[str, Any] | None = None
    _sqltx_targets: list[str]  # rollback target of each open scope, innermost last
    _sqltx_spare: str | None = None  # a scope savepoint left established and clean

    # -- provided by the driver adapter -----------------------------------
    def _sqltx_exec(self, sql: str) -> None:
        raise NotImplementedError

    def _sqltx_script(self, *statements: str) -> None:
        """Run ``statements`` in order: one round trip where the driver allows it."""
        if self._sqltx_one_statement_per_call:
            for sql in statements:
                self._sqltx_exec(sql)
        else:
            self._sqltx_exec("; ".join(statements))

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

    # -- used by the owner (isolation.py) ----------------------------------
    def sqltx_arm(self) -> None:
        """From now on, app transaction control maps onto savepoints."""
        self._sqltx_exec(f"SAVEPOINT {TX_SAVEPOINT}0")
        self._sqltx_targets = [f"{TX_SAVEPOINT}0"]  # the run's: it has no savepoint of its own
        self._sqltx_spare = None
        self._sqltx_armed = True
        self._sqltx_ended = False
        self._sqltx_last = None
        self._sqltx_dirty = False
        self._sqltx_autocommit = False
        self._sqltx_settings = {}

    def sqltx_disarm(self) -> None:
        self._sqltx_armed = False
        self._sqltx_quiet = False

    def sqltx_push(self, name: str) -> None:
        """Open a scope whose savepoint is ``name`` (one per depth)."""
        self._sqltx_check()
        if self._sqltx_spare != name:
            self._sqltx_exec(f"SAVEPOINT {name}")
        elif self._sqltx_dirty:
            # Something ran since the spare was rolled back: keep that work
            # (merge it into the scope outside) and start clean.
            self._sqltx_script(f"RELEASE SAVEPOINT {name}", f"SAVEPOINT {name}")
        self._sqltx_spare = None
        self._sqltx_targets.append(name)
        self._sqltx_dirty = False
        self._sqltx_autocommit = False

    def sqltx_pop(self, name: str) -> None:
        """Undo everything since :meth:`sqltx_push`; ``name`` stays as the spare.

        Not releasing it is what lets the next scope start for free; the
        spare never piles up (see the module docstring), so neither do the
        locks PostgreSQL keeps per subtransaction.
        """
        self._sqltx_check()
        self._sqltx_exec(f"ROLLBACK TO SAVEPOINT {name}")
        del self._sqltx_targets[-1]
        self._sqltx_spare = name
        self._sqltx_dirty = False
        self._sqltx_autocommit = False
        self._sqltx_settings = {}

    @property
    def sqltx_ended(self) -> bool:
        """True once the run's transaction was found ended behind our back."""
        return self._sqltx_ended

    @property
    def sqltx_last_statement(self) -> str | None:
        return self._sqltx_last

    def _sqltx_check(self) -> None:
        if self._sqltx_ended:
            # Refuse: with psycopg2 the next statement would run in autocommit.
            raise TransactionEndedError(self._sqltx_last, committed=False, refused=True)

    # -- seen by the cursor wrappers ---------------------------------------
    def _sqltx_before(self, statement: object) -> None:
        if self._sqltx_armed:
            self._sqltx_check()
            if not self._sqltx_quiet:
                self._sqltx_precheck(statement)
            self._sqltx_dirty = True

    def _sqltx_after(self, statement: object, ok: bool) -> None:
        if not self._sqltx_armed:
            return
        status = self._sqltx_status()
        if status == IDLE:
            # Only transaction-control SQL leaves an armed connection idle.
            # The statement itself is not failed: the owner reports the
            # damage once, when the scope ends.
            self._sqltx_ended = True
            self._sqltx_last = _short(statement)
        elif self._sqltx_autocommit and not self._sqltx_quiet:
            # Emulated autocommit: each statement's work is kept (or, if it
            # failed, undone) as a real autocommit connection would do.
            if status == INTRANS:
                self._sqltx_keep()
            else:
                self._sqltx_undo()
            self._sqltx_dirty = False

    # -- the DB-API surface the application sees ---------------------------
    def commit(self) -> None:
        if not self._sqltx_armed:
            return self._sqltx_real_commit()
        if self._sqltx_ended or self._sqltx_quiet or not self._sqltx_dirty:
            return None
        # Like PostgreSQL, a commit of a failed transaction rolls it back.
        if self._sqltx_status() == INERROR:
            self._sqltx_undo()
        else:
            self._sqltx_keep()
        self._sqltx_dirty = False
        return None

    def rollback(self) -> None:
        if not self._sqltx_armed:
            return self._sqltx_real_rollback()
        if self._sqltx_ended or self._sqltx_quiet or not self._sqltx_dirty:
            return None
        self._sqltx_undo()
        self._sqltx_dirty = False
        return None

    def _sqltx_keep(self) -> None:
        """A commit: mark this point; a later rollback comes back here."""
        marker = f"{TX_SAVEPOINT}{len(self._sqltx_targets) - 1}"
        if self._sqltx_targets[-1] == marker:
            self._sqltx_script(f"RELEASE SAVEPOINT {marker}", f"SAVEPOINT {marker}")
        else:  # the scope's first commit
            self._sqltx_exec(f"SAVEPOINT {marker}")
            self._sqltx_targets[-1] = marker
        # A deeper spare is now released (RELEASE above) or buried under the
        # new marker (at most one per scope, gone with the scope): not reusable.
        self._sqltx_spare = None

    def _sqltx_undo(self) -> None:
        """A rollback: back to the last commit (or the scope's start)."""
        self._sqltx_exec(f"ROLLBACK TO SAVEPOINT {self._sqltx_targets[-1]}")
        self._sqltx_spare = None  # a deeper spare is gone

    def close(self) -> None:
        if not self._sqltx_armed:
            return self._sqltx_real_close()
        # PEP 249: closing without commit rolls back; the connection itself is
        # the run's and stays open.
        return self.rollback()

    def _sqltx_set(self, name: str, value: Any) -> None:
        assert self._sqltx_settings is not None
        self._sqltx_settings[name] = value
        if name == "autocommit":
            self._sqltx_autocommit = bool(value)

    def _sqltx_get(self, name: str, default: Any) -> Any:
        return (self._sqltx_settings or {}).get(name, default)


# -- helpers for the driver adapters (nose2_sqltx/dialects) -----------------

def reported(conn: Any, query: Any, run: Any) -> Any:
    """Run one statement, telling the guard before and after ."""
    conn._sqltx_before(query)
    ok = False
    try:
        result = run()
        ok = True
        return result
    finally:
        conn._sqltx_after(query, ok)


def guarded_setting(real: Any, name: str, autocommit: Any = None) -> property:
    """A connection setting that, while armed, is remembered instead of applied:
    drivers refuse to change it inside a transaction, roll back or commit.
    ``autocommit(value)``, if given, says whether the value switches the
    driver to autocommit, which the guard then emulates."""

    def get(self: Any) -> Any:
        if self._sqltx_armed:
            return self._sqltx_get(name, real.__get__(self))
        return real.__get__(self)

    def set_(self: Any, value: Any) -> None:
        if self._sqltx_armed:
            self._sqltx_set(name, value)
            if autocommit is not None:
                self._sqltx_set("autocommit", autocommit(value))
        else:
            real.__set__(self, value)

    return property(get, set_)


def _short(statement: object) -> str:
    if isinstance(statement, bytes):
        statement = statement.decode("utf-8", "replace")
    text = " ".join(str(statement).split())
    return text if len(text) <= 80 else text[:77] + "..."
