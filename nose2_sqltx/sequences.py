"""``reset-sequences``: every scope starts from the same sequence values.

Sequences are not transactional: a rolled-back insert still moves one, so
ids depend on what ran before. With the reset on, a scope (a test, a class)
starts from the values its enclosing scope's children all start from (taken
when the first of them opens: after the class's ``setUpTestData``, or after
the run's schema and fixtures) and puts back, when it ends, those that moved,
in one conditional statement. A scope without the reset leaves them moved;
the next scope with it puts them back first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .dialects import Backend
from .errors import ConfigError
from .scopes import Scope

__unittest = True

__all__ = ["SequenceReset"]


class SequenceReset:
    """Where the sequences stand, scope by scope; ``execute(sql)`` runs on the run's connection."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        #: whether the sequences stand where the innermost scope's children start
        self._put_back = True

    def check(self) -> None:
        """Raise :class:`ConfigError` where the database cannot put sequences back."""
        if not self.backend.resets_sequences:
            raise ConfigError(
                "reset-sequences", "true",
                f"{self.backend.display_name} sets AUTO_INCREMENT back only with ALTER TABLE, which commits the "
                "run's transaction", "Leave it off there, and let tests look rows up by what they contain "
                "rather than by literal ids (or run them on PostgreSQL or SQLite)")

    def begin(self, scope: Scope, parent: Scope, run_connection: Any, execute: Callable[[str], None]) -> None:
        """``scope`` (opening inside ``parent``) starts from, and puts back at
        its end, the values ``parent``'s children all start from."""
        self.check()
        if parent.sequences is None:
            # Through the run's own Connection: a read, no transaction control.
            parent.sequences = self.backend.sequence_values(run_connection, run_only=True)
        elif not self._put_back:
            self._restore(parent.sequences, execute)
        scope.restore_sequences = parent.sequences

    def end(self, scope: Scope, execute: Callable[[str], None]) -> None:
        if scope.restore_sequences is not None:
            self._restore(scope.restore_sequences, execute)
        else:
            self._put_back = False  # this scope's inserts may have moved them

    def _restore(self, values: dict[str, int | None], execute: Callable[[str], None]) -> None:
        sql = self.backend.restore_sequences_sql(values)
        if sql is not None:
            execute(sql)
        self._put_back = True
