"""Ctrl-C and SIGTERM on their way to the end of the run.

Test runners let only ``KeyboardInterrupt`` through their error handling, so
:class:`StopSignals` raises one (:class:`Interrupted` for Ctrl-C,
:class:`Terminated` for SIGTERM): the runner stops, the run's end rolls back
and closes, and :meth:`StopSignals.die` then ends the process as the signal
would have (exit status 130 or 143), after one line that says so instead of
a traceback. A statement the test was blocked in is cancelled as the signal
arrives (:mod:`nose2_sqltx.interrupts`).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

__unittest = True

__all__ = ["Interrupted", "Terminated", "StopSignals"]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT), on its way to the end of the run."""

    signum = signal.SIGINT
    label = "Ctrl-C"


class Terminated(Interrupted):
    """SIGTERM, on its way to the end of the run."""

    signum = signal.SIGTERM
    label = "SIGTERM"


class StopSignals:
    """Handlers for SIGINT and SIGTERM, installed where nobody else handles
    them (Python's own Ctrl-C handler counts as nobody); :attr:`received` is
    the stop that came, if one did. ``defer(stop)`` may take the raising
    over (a statement that is being cancelled raises it as it returns)."""

    def __init__(self, defer: Callable[[type[Interrupted]], bool] = lambda stop: False) -> None:
        self.received: type[Interrupted] | None = None
        self._defer = defer
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        self.received = None
        if threading.current_thread() is not threading.main_thread():
            return
        for kind, default in ((Interrupted, signal.default_int_handler), (Terminated, signal.SIG_DFL)):
            if signal.getsignal(kind.signum) is default:
                self._previous[kind.signum] = default
                signal.signal(kind.signum, self._handler(kind))

    def _handler(self, kind: type[Interrupted]) -> Any:
        def handle(signum: int, frame: FrameType | None) -> None:
            # In a statement, the stop waits for the statement to end
            # (cancelled at once); a second signal does not wait.
            first = self.received is None
            self.received = kind
            if first and self._defer(kind):
                return
            raise kind()

        return handle

    def restore(self) -> None:
        """Give the signals back to whoever had them."""
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def die(self, kind: type[Interrupted]) -> None:
        """End the process as ``kind``'s signal would have (handlers restored first)."""
        self.restore()
        signal.signal(kind.signum, signal.SIG_DFL)
        os.kill(os.getpid(), kind.signum)
