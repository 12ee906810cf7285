"""Safety around the run: the test-database check before it, the catalog audit after it.

Rolled-back tests can still do damage through code that escapes the
transaction, so :func:`check_test_database` (the README's "production
guard") refuses a database that does not look like one for tests.
:class:`CatalogAudit` remembers the database's schemas and tables when the
run starts and names what differs when it ends: what something committed
outside the run's transaction.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import Connection, MetaData

from .dialects import Backend
from .errors import DatabaseChangedError, UnsafeDatabaseError

__unittest = True

__all__ = ["looks_like_test", "check_test_database", "CatalogAudit"]


def looks_like_test(name: str) -> bool:
    """Whether a database name looks like a test database: one of its words
    starts or ends with "test" (``test``, ``app_test``, ``test_app``, ``testing``)."""
    return any(word.startswith("test") or word.endswith("test") for word in re.split(r"[^a-z]+", name.lower()))


def check_test_database(conn: Connection, backend: Backend, metadata: Sequence[MetaData], *,
                        allow: Sequence[str], masked_url: str) -> None:
    """Raise :class:`UnsafeDatabaseError` unless ``conn``'s database looks like
    one for tests or is named in ``allow``."""
    label = backend.database_label
    if label is None or label in allow:
        return
    reasons = []
    if backend.named_databases and not looks_like_test(label):
        reasons.append(f"its name {label!r} does not look like a test database (no word starts or ends with 'test')")
    known = {t.fullname for m in metadata for t in m.tables.values()}
    foreign = sorted(set(backend.user_tables(conn)) - known)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        what = "the configured metadata does not define" if metadata else "no metadata defines"
        reasons.append(f"it holds tables {what} ({shown})")
    if reasons:
        raise UnsafeDatabaseError(masked_url, label, reasons)


class CatalogAudit:
    """The database's schemas, tables and sequences at the run's start, compared at its end.

    Sequences are not transactional: a rolled-back insert still moves one.
    Those that were there at the start are put back where they stood before
    the comparison (:meth:`restore_sequences`), so the database is left as
    found; one that cannot be put back is reported as moved.
    """

    def __init__(self, backend: Backend, masked_url: str) -> None:
        self.backend = backend
        self.masked_url = masked_url
        self._before: frozenset[str] | None = None
        self._sequences: dict[str, int | None] = {}

    def take(self, conn: Connection) -> None:
        """Remember what is there now (the run's start)."""
        self._before = self.backend.catalog(conn)
        self._sequences = self.backend.sequence_values(conn)

    def restore_sequences(self, conn: Connection) -> None:
        """Put the sequences that were there at the start back where they stood (committed)."""
        sql = self.backend.restore_sequences_sql(self._sequences)
        if sql is not None:
            conn.exec_driver_sql(sql)
            conn.commit()

    def compare(self, conn: Connection) -> DatabaseChangedError | None:
        """What differs from :meth:`take`, as the error to report, or None."""
        if self._before is None:
            return None
        after = self.backend.catalog(conn)
        now = self.backend.sequence_values(conn)
        moved = tuple(sorted(name for name, last in self._sequences.items() if name in now and now[name] != last))
        if after == self._before and not moved:
            return None
        return DatabaseChangedError(self.masked_url, tuple(sorted(after - self._before)),
                                    tuple(sorted(self._before - after)), moved)
