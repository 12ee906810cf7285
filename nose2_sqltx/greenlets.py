"""Greenlets kept for the next call: the run's bridges and a test's gates.

Sync code that reaches an async driver runs in a greenlet that hands each
awaitable to the loop: the run's :mod:`~nose2_sqltx.runloop` makes one for
every call through the run's connection, and :mod:`~nose2_sqltx.testloop`
one for every task of a test. A new greenlet costs about 20 µs on CPython
3.11 to 3.13 (each comes with a frame data stack of its own, mapped and
unmapped with it), more than a savepoint on a local server, and an async
test made several. So a greenlet here is a worker: it runs one call, hands
its parent a :class:`Done`, and waits for the next call, kept in an idle
list of its thread (greenlets belong to the thread that made them).

A worker goes back to the idle list only once its call has ended, its
stack unwound: nothing the call held (a ``with`` block, a lock) is still
held. A worker's ``sqltx_call`` changes as each call ends: what keys on the
greenlet that runs sync code (:class:`~nose2_sqltx.runloop.Turns`) tells
an ended call by it, as it tells a finished greenlet by ``dead``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__unittest = True

__all__ = ["Done", "give_back", "job", "take", "worker_class"]

#: idle workers kept per thread and kind: a test's tasks and calls nest a few deep at most
_KEEP = 8

_idle = threading.local()


class Done:
    """What a worker hands its parent when a call has ended: its value, or what it raised."""

    __slots__ = ("ok", "value")

    def __init__(self, ok: bool, value: Any) -> None:
        self.ok = ok
        self.value = value

    def result(self) -> Any:
        """The call's value; what it raised, raised here. Either is handed
        over, not kept: the idle worker still refers to this Done."""
        value, self.value = self.value, None
        if self.ok:
            return value
        raise value


def worker_class(name: str, doc: str, **marks: Any) -> type:
    """A greenlet class whose instances run call after call (see :func:`take`);
    ``marks``: class attributes (``__sqlalchemy_greenlet_provider__``, the
    project's own marks)."""
    from greenlet import greenlet

    return type(name, (greenlet,), {"__doc__": doc, "sqltx_call": 0, **marks})


def _serve(call: tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]) -> None:
    """A worker's body: each call to its end, then the :class:`Done` to the parent, then the next call."""
    from greenlet import GreenletExit, getcurrent

    me = getcurrent()
    while True:
        fn, args, kwargs = call
        try:
            done = Done(True, fn(*args, **kwargs))
        except GreenletExit:
            raise  # the worker itself is ended (collected in the middle of a call)
        except BaseException as exc:  # noqa: BLE001 - the call's outcome, the parent's to raise
            done = Done(False, exc)
        me.sqltx_call += 1  # the call is over: what it left held (a turn) is nobody's now
        del fn, args, kwargs, call
        call = me.parent.switch(done)


def take(kind: type, parent: Any, context: Any) -> Any:
    """A worker of ``kind``, idle in this thread or new, for one call (see
    :func:`job`) whose greenlet parent is ``parent`` and whose contextvars
    are ``context``. Switch it in with :func:`job`, on with ``switch`` and
    ``throw`` until it hands back a :class:`Done`; then :func:`give_back`."""
    idle = _idle_list(kind)
    worker = idle.pop() if idle else kind(_serve)
    worker.parent = parent
    worker.gr_context = context
    return worker


def job(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Callable[..., Any], tuple[Any, ...],
                                                                       dict[str, Any]]:
    """What a worker is switched in with to run ``fn(*args, **kwargs)``."""
    return fn, args, kwargs


def give_back(worker: Any) -> None:
    """``worker``, whose call has ended, to its thread's idle list."""
    worker.gr_context = None  # (the caller's contextvars are not kept alive by an idle worker)
    idle = _idle_list(type(worker))
    if len(idle) < _KEEP:
        idle.append(worker)


def _idle_list(kind: type) -> list[Any]:
    lists: dict[type, list[Any]] | None = getattr(_idle, "lists", None)
    if lists is None:
        lists = _idle.lists = {}
    return lists.setdefault(kind, [])
