"""Threads that outlive the test that started them.

A test may start threads that use the database (a live HTTP server, a
worker pool) and share the run's connection while it runs. One that is
still at work after its test ended would send its statements into whatever
scope is open then: the next test's transaction. So the end of every scope
notes the threads started during it that are still alive, and a statement
from one of them is refused with :class:`ThreadOutlivedTestError`.
"""

from __future__ import annotations

import threading

from .errors import ThreadOutlivedTestError
from .messages import PREFIX

__unittest = True

__all__ = ["ThreadWatch"]


class ThreadWatch:
    """Which live threads were started by a scope that has ended."""

    def __init__(self) -> None:
        #: thread ident -> (the thread, the scope that started it)
        self._outliving: dict[int, tuple[threading.Thread, str]] = {}

    @staticmethod
    def mark() -> frozenset[threading.Thread]:
        """The threads alive now (a scope's start)."""
        return frozenset(threading.enumerate())

    def scope_ended(self, before: frozenset[threading.Thread], label: str) -> None:
        """A scope that started with the threads ``before`` ended: note the
        ones it started that are still alive, forget the ones that ended."""
        for ident, (thread, _) in list(self._outliving.items()):
            if not thread.is_alive():
                del self._outliving[ident]
        current = threading.current_thread()
        for thread in threading.enumerate():
            if thread in before or thread is current or thread.name.startswith(PREFIX) or thread.ident is None:
                continue  # (the run's own threads, started as it needs them, serve every scope)
            self._outliving[thread.ident] = (thread, label)

    def check(self) -> None:
        """Refuse the statement about to run if its thread outlived its test."""
        if not self._outliving:
            return
        found = self._outliving.get(threading.get_ident())
        if found is not None and found[0] is threading.current_thread():
            raise ThreadOutlivedTestError(found[0].name, found[1])
