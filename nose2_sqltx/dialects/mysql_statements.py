"""Which statements commit implicitly on MySQL and MariaDB, and which end the transaction.

Pure text classification, for the MySQL backend's connection: a statement
that would commit the run's transaction implicitly is refused before it
runs (:func:`implicit_commit_fix` says what to do instead), and where the
driver does not report the server's transaction state, a plain ``COMMIT``
or ``ROLLBACK`` is recognised by its text (:func:`ends_transaction`).
"""

from __future__ import annotations

import re

__unittest = True

__all__ = ["implicit_commit_fix", "ends_transaction", "rolls_back"]

# Leading whitespace and comments, then the statement's first words.
_HEAD = re.compile(r"(?:\s+|/\*.*?\*/|(?:--|#)[^\n]*(?:\n|$))*", re.S)
_TRANSACTION = re.compile(
    r"(?:BEGIN|START\s+TRANSACTION|XA\s)|SET\s+(?:SESSION\s+|@@(?:SESSION\.)?)?AUTOCOMMIT\b", re.I)
_ENDS = re.compile(r"(?:COMMIT|ROLLBACK)\b(?!\s+(?:WORK\s+)?TO\b)", re.I)
_TEMPORARY = re.compile(r"(?:CREATE|DROP)\s+(?:OR\s+REPLACE\s+)?TEMPORARY\b", re.I)
_DDL = re.compile(
    r"(?:ALTER|CREATE|DROP|RENAME|TRUNCATE|GRANT|REVOKE|LOCK\s+TABLES?|UNLOCK\s+TABLES?|ANALYZE|"
    r"OPTIMIZE|REPAIR|CHECK\s+TABLE|FLUSH|RESET|INSTALL|UNINSTALL|CACHE\s+INDEX|LOAD\s+INDEX)\b",
    re.I,
)
_FIX_DDL = (
    "Declare the table in the metadata named under [sqltx] (the schema is created once, before "
    "the tests), use CREATE TEMPORARY TABLE, give this test real commits (real_commits = True on "
    "its class, or @nose2_sqltx.real_commits on the test; it then undoes its DDL itself), or run it "
    "against PostgreSQL or SQLite, where DDL is transactional"
)
_FIX_TRANSACTION = (
    "Use SQLAlchemy's begin()/commit() or execution_options(isolation_level=\"AUTOCOMMIT\"), which "
    "nose2-sqltx maps onto savepoints, instead of transaction control as SQL"
)


def _head(statement: object) -> str:
    """``statement`` as text from its first word on (leading comments skipped)."""
    if isinstance(statement, bytes):
        statement = statement.decode("utf-8", "replace")
    sql = str(statement)
    return sql[_HEAD.match(sql).end():]  # type: ignore[union-attr]


def implicit_commit_fix(statement: object) -> str | None:
    """What to do instead, if ``statement`` would commit implicitly on MySQL/MariaDB."""
    head = _head(statement)
    if _TRANSACTION.match(head):
        return _FIX_TRANSACTION
    if _DDL.match(head) and not _TEMPORARY.match(head):
        return _FIX_DDL
    return None


def ends_transaction(statement: object) -> bool:
    """Whether ``statement`` is a plain COMMIT or ROLLBACK (not ROLLBACK TO a savepoint)."""
    return bool(_ENDS.match(_head(statement)))


def rolls_back(statement: object) -> bool:
    """Whether ``statement`` is a plain ROLLBACK (its work did not reach the database)."""
    return ends_transaction(statement) and _head(statement)[:8].upper() == "ROLLBACK"
