"""SIGTERM on its way to the end of the run.

Test runners let only ``KeyboardInterrupt`` through their error handling, so
a SIGTERM handler raises :class:`Terminated` (a ``KeyboardInterrupt``): the
runner stops as on Ctrl-C, the run's end rolls back and closes, and
:func:`die_by_sigterm` then ends the process as SIGTERM would have
(exit status 143).
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

__unittest = True

__all__ = ["Terminated", "catch_sigterm", "restore_sigterm", "die_by_sigterm"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, on its way to the end of the run."""


def catch_sigterm(handler: Any) -> Any:
    """Install ``handler`` for SIGTERM if nobody else handles it; return what
    :func:`restore_sigterm` needs (None: nothing was installed)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None  # someone else's handler: leave it alone
    signal.signal(signal.SIGTERM, handler)
    return signal.SIG_DFL


def restore_sigterm(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def die_by_sigterm() -> None:
    """End the process as SIGTERM would have (its handler must be restored first)."""
    os.kill(os.getpid(), signal.SIGTERM)
