"""Callbacks an app registers for "after commit", captured for a test.

SQLAlchemy's way to run work once a Session's transaction has committed
(send the mail, enqueue the job) is its ``after_commit`` event, usually
registered on the session at hand for one commit::

    event.listen(session, "after_commit", send_receipt, once=True)

Under nose2-sqltx these fire at the app's commit, as in production.
:class:`CommitCallbacks` (``DatabaseTest.captureOnCommitCallbacks``, after
Django's) collects those a block's commits would fire, so that a test can
assert on them, and either lets them run as usual (``execute=True``) or
holds them back for the test to run (the default).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

__unittest = True

__all__ = ["CommitCallbacks"]


class CommitCallbacks:
    """A context manager whose value is the list of the after-commit
    callbacks registered on a Session (``event.listen(session,
    "after_commit", fn)``) that commits inside the block, each ready to call
    with no argument (its session is bound). ``execute``: they run at the
    commit as usual; else they are held back, and run only if the test
    calls them."""

    def __init__(self, *, execute: bool = False) -> None:
        self.execute = execute
        self.callbacks: list[Callable[[], Any]] = []

    def __enter__(self) -> list[Callable[[], Any]]:
        event.listen(Session, "before_commit", self._collect)
        return self.callbacks

    def __exit__(self, *exc: object) -> None:
        event.remove(Session, "before_commit", self._collect)

    async def __aenter__(self) -> list[Callable[[], Any]]:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()

    def _collect(self, session: Session) -> None:
        listeners = session.dispatch.after_commit
        own = list(getattr(listeners, "listeners", ()))  # the session's own, not every Session's
        self.callbacks.extend(functools.partial(fn, session) for fn in own)
        if own and not self.execute:
            listeners.clear()  # held back: SQLAlchemy's event API removes them the same way
