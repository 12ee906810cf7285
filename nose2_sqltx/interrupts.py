"""Ctrl-C and SIGTERM while a statement runs: the statement is cancelled at once.

Python runs a signal handler only between bytecodes, so a test blocked in a
driver call (a long query, a wait for another connection's lock) would not
see Ctrl-C or SIGTERM until the database answers, which may be never.
:class:`StatementCanceller` has those signals wake a thread of its own
(through :func:`signal.set_wakeup_fd`, whose write happens in the C-level
handler, at once), and that thread asks the database to cancel the statement
the run's connection is running: PostgreSQL's cancel request, SQLite's
``interrupt()``, MySQL's ``KILL QUERY`` from a connection of its own. The
driver call then returns, the handler runs, and the run rolls back and ends.

Whoever had the wakeup descriptor before (an asyncio loop) still gets every
signal's byte.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import weakref
from collections.abc import Callable

__unittest = True

__all__ = ["StatementCanceller"]

#: the signals that stop a run
_STOPPING = frozenset({signal.SIGINT, signal.SIGTERM})


#: the cancellers listening in this process
_listening: weakref.WeakSet[StatementCanceller] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A forked child's signals must not reach the parent's thread through
    # the inherited pipe (it would cancel the parent's statement).
    for canceller in list(_listening):
        canceller.forget_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


class StatementCanceller:
    """While started, Ctrl-C or SIGTERM calls ``cancel`` from a thread of its
    own; ``cancel`` should cancel the run's statement if one is running, and
    must not raise. Works from the main thread only (Python's rule for signals)."""

    def __init__(self, cancel: Callable[[], None]) -> None:
        self._cancel = cancel
        self._pipe: tuple[int, int] | None = None
        self._previous = -1
        self._thread: threading.Thread | None = None
        self._stopping = False

    def start(self) -> bool:
        """Start listening; False (and nothing done) outside the main thread."""
        if threading.current_thread() is not threading.main_thread() or self._pipe is not None:
            return False
        read, write = os.pipe()
        os.set_blocking(write, False)
        try:
            self._previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        except (ValueError, OSError):
            os.close(read)
            os.close(write)
            return False
        self._pipe = (read, write)
        _listening.add(self)
        self._stopping = False
        self._thread = threading.Thread(target=self._listen, name="nose2-sqltx canceller", daemon=True)
        self._thread.start()
        return True

    def forget_in_child(self) -> None:
        """In a forked child: the wakeup descriptor back to what it was, the
        inherited pipe closed (the listening thread is the parent's)."""
        pipe, self._pipe = self._pipe, None
        self._thread = None
        if pipe is None:
            return
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(self._previous)
        for fd in pipe:
            with contextlib.suppress(OSError):
                os.close(fd)

    def stop(self) -> None:
        """Stop listening and give the wakeup descriptor back."""
        pipe, self._pipe = self._pipe, None
        _listening.discard(self)
        if pipe is None:
            return
        read, write = pipe
        with contextlib.suppress(ValueError, OSError):
            current = signal.set_wakeup_fd(self._previous)
            if current != write:
                signal.set_wakeup_fd(current)  # someone set theirs after us: theirs stays
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(write, b"\0")
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        os.close(read)
        os.close(write)

    def _listen(self) -> None:
        pipe = self._pipe
        assert pipe is not None
        read = pipe[0]
        while True:
            try:
                data = os.read(read, 64)
            except OSError:
                return
            if self._stopping or not data:
                return
            if self._previous != -1:
                with contextlib.suppress(OSError):
                    os.write(self._previous, data)
            if any(number in _STOPPING for number in data):
                self._cancel()
