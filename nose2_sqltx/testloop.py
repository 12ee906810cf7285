"""An ``AsyncDatabaseTest``'s coroutines, run on the run's loop.

``unittest.IsolatedAsyncioTestCase`` runs each test on a loop of its own,
through an ``asyncio.Runner`` it makes per test. The run's connection over
an async driver lives on the run's loop (:mod:`nose2_sqltx.runloop`), so on
a test's own loop every statement would cross from one thread to another
and back: about a tenth of a millisecond per await of the driver, several
times the cost of the statement itself on a local server. So, where it can,
``AsyncDatabaseTest`` gives the test case a :class:`RunLoopRunner`
instead: the test's ``asyncSetUp``, test method, ``asyncTearDown`` and
async cleanups run as tasks on the run's loop, where the driver is awaited
directly, while the test's thread waits for them as it waits for its own
loop. What the test sees is what ``IsolatedAsyncioTestCase`` promises: its
coroutines share one context; tasks it leaves running are cancelled and
async generators it leaves open are closed when it ends; the loop runs in
debug mode while the test does.

Two things differ, and :func:`portal` and the run's loop answer for them:

- Sync code called from the test's coroutines (the app's sync engine, a
  CLI function) waits for the driver on the loop that runs it. Each task of
  the test runs in a greenlet (:func:`portal`; one that an earlier task
  ran in, :mod:`~nose2_sqltx.greenlets`) that SQLAlchemy's
  ``await_only`` and the run's connection both accept: the sync code's
  awaits are passed to the loop, and the task goes on when they are done.
- Sync code that *blocks* the loop while another thread waits for the
  run's connection (Starlette's ``TestClient`` called inside an async test,
  a live server called with ``requests``) would wait forever, as the
  connection's loop is the one it blocks. The other thread's wait is
  bounded instead (:meth:`RunLoop.blocked_by_test <nose2_sqltx.runloop.RunLoop>`):
  it fails with a message that names the blocking line and the fixes, and
  ``async-test-loop = own`` puts each test back on a loop of its own.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
import types
import weakref
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

from .greenlets import Done, give_back, job, take, worker_class
from .runloop import RunLoop

#: the run's own driver calls (from other threads), which are not the test's tasks
_ONE_AT_A_TIME = RunLoop._one_at_a_time.__code__

__unittest = True

__all__ = ["RunLoopRunner", "portal"]

T = TypeVar("T")


@types.coroutine
def portal(coroutine: Coroutine[Any, Any, T], watch: RunLoop | None = None) -> Generator[Any, Any, T]:
    """``coroutine``, run so that sync code called from it may wait for a
    coroutine on the loop that runs it (see the module docstring).

    The coroutine runs in a greenlet (a worker, :mod:`~nose2_sqltx.greenlets`), which SQLAlchemy's
    ``await_only`` accepts as it accepts its own ``greenlet_spawn``'s: an
    awaitable it hands up is awaited here, in the task, and its result (or
    error) handed back. What the coroutine itself yields (a future it waits
    on) is passed on to the task unchanged.
    """
    import greenlet

    # The task's context (IsolatedAsyncioTestCase's, shared by a test's
    # phases): the coroutine sets and reads its variables there, not in the
    # gate's own empty one.
    current = greenlet.getcurrent()
    gate = take(_gate_class(), current, current.gr_context)
    gate.sqltx_watch = watch
    message = _step(gate, job(_drive, coroutine))
    while True:
        if type(message) is Done:
            gate.sqltx_watch = None
            give_back(gate)
            return message.result()  # type: ignore[no-any-return]
        if type(message) is tuple and len(message) == 2 and message[0] is _YIELDED:
            try:
                sent = yield message[1]
            except BaseException as exc:  # noqa: BLE001 - a cancel, or a throw, for the coroutine
                message = _step(gate, (None, None, exc))
            else:
                message = _step(gate, (None, sent, None))
            continue
        # An awaitable from sync code (SQLAlchemy's await_only, the run's connection): awaited here.
        try:
            result = yield from _awaiting(message)
        except BaseException as exc:  # noqa: BLE001 - handed to the sync code, which awaited it
            message = _step(gate, exc, throw=True)
        else:
            message = _step(gate, result)


async def _in_portal(coroutine: Coroutine[Any, Any, T], watch: RunLoop | None) -> T:
    """:func:`portal` as a coroutine a task accepts (a generator no longer is one, from Python 3.12)."""
    return await portal(coroutine, watch)


_YIELDED = object()


def _awaiting(awaitable: Any) -> Generator[Any, Any, Any]:
    return (yield from awaitable.__await__())


def _step(gate: Any, value: Any, throw: bool = False) -> Any:
    import greenlet

    # The task's steps run wherever the loop runs them (an eager task's
    # first one, inside its creator's): the gate hands back to that one.
    gate.parent = greenlet.getcurrent()
    watch = gate.sqltx_watch
    before = None if watch is None else watch.stepping(time.monotonic())
    try:
        if throw:
            return gate.throw(value)
        return gate.switch(value)
    finally:
        if watch is not None:
            watch.stepping(before)


def _drive(coroutine: Coroutine[Any, Any, T]) -> T:
    """A gate's call: the coroutine, one step at a time; what it yields
    goes to the task, what the task sends or throws comes back to it."""
    import greenlet

    me = greenlet.getcurrent()
    sent: Any = None
    error: BaseException | None = None
    while True:
        try:
            yielded = coroutine.throw(error) if error is not None else coroutine.send(sent)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        _, sent, error = me.parent.switch((_YIELDED, yielded))


@functools.cache
def _gate_class() -> type:
    return worker_class("Gate", "The greenlet a test's task runs in: SQLAlchemy's ``await_only`` works in it.",
                        __sqlalchemy_greenlet_provider__=True, sqltx_gate=True, sqltx_watch=None)


#: packages whose tasks on the run's loop serve its connection, which outlives the test: not the test's to end
_DRIVER_PACKAGES = frozenset({"asyncpg", "psycopg", "aiosqlite", "aiomysql", "asyncmy", "pymysql"})


def _of_a_driver(coro: Any) -> bool:
    frame = getattr(coro, "cr_frame", None)
    module = "" if frame is None else str(frame.f_globals.get("__name__", ""))
    return getattr(coro, "cr_code", None) is _ONE_AT_A_TIME or module.split(".")[0] in _DRIVER_PACKAGES


class _TestTasks:
    """The run's loop's task factory while a test runs: each task of the
    test's in a :func:`portal`, and kept, to be ended with the test; a
    driver's own tasks (asyncpg's cancel request, the run's calls from
    other threads) as they are."""

    def __init__(self, watch: RunLoop) -> None:
        self.watch = watch
        self.made: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()

    def __call__(self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        if _of_a_driver(coro):
            return asyncio.Task(coro, loop=loop, **kwargs)
        task = asyncio.Task(_in_portal(coro, self.watch), loop=loop, **kwargs)
        self.made.add(task)
        return task


async def in_task(fn: Callable[[], T], watch: RunLoop) -> tuple[bool, Any]:
    """``fn()`` (sync code) in a :func:`portal`: ``(True, its value)`` or
    ``(False, what it raised)``; whatever it raises is the caller's, not the
    loop's (a KeyboardInterrupt raised in a task would stop the loop)."""

    async def call() -> T:
        return fn()

    try:
        return True, await portal(call(), watch)
    except BaseException as exc:  # noqa: BLE001 - handed to the thread that waits for the test
        return False, exc


async def _phase(coroutine: Coroutine[Any, Any, T], loop: asyncio.AbstractEventLoop) -> tuple[bool, Any]:
    """A test's phase, in the task :meth:`RunLoopRunner.run` makes for it:
    ``coroutine``'s value as ``(False, value)``; a KeyboardInterrupt or
    SystemExit it raises as ``(True, it)``: raised from a task, either
    would stop the run's loop, where the test's thread should get it. Debug
    mode ends as the phase does (see :meth:`RunLoopRunner.run`)."""
    try:
        return False, await coroutine
    except (KeyboardInterrupt, SystemExit) as exc:
        return True, exc
    finally:
        _set_debug(loop, False)


def run_test(loop: RunLoop, fn: Callable[[], T]) -> T:
    """``fn()``, a test's whole run (sync code: unittest's ``run``), called
    in a task of ``loop`` whose sync code may wait for coroutines on it
    (:func:`portal`); this thread waits for its end and gets what it
    returns or raises."""
    returned, value = loop.run_task(lambda: in_task(fn, loop))
    if not returned:
        raise value
    return value  # type: ignore[no-any-return]


def _set_debug(loop: asyncio.AbstractEventLoop, enabled: bool) -> None:
    """``loop.set_debug(enabled)``, called in the loop's own thread, with
    its whole effect at once.

    On a running loop ``set_debug`` sets the flag and leaves the other half,
    the coroutine origin tracking (``sys.set_coroutine_origin_tracking_depth``,
    per thread), to the loop's next turn, through ``call_soon_threadsafe``:
    a write to the loop's self-pipe, an extra turn and its read, twice per
    phase of every test (about a quarter of a millisecond per test, more
    than a statement). In the loop's own thread the tracking can be set at
    once, by the loop's own method, as ``set_debug`` on a loop not yet
    running does (CPython 3.11 to 3.13 alike); where that method is missing,
    ``set_debug`` itself.
    """
    track = getattr(loop, "_set_coroutine_origin_tracking", None)
    if track is None or not hasattr(loop, "_debug"):
        loop.set_debug(enabled)
        return
    loop._debug = enabled
    track(enabled)


class RunLoopRunner:
    """What ``IsolatedAsyncioTestCase`` expects of its ``asyncio.Runner``,
    on the run's loop, for a test whose whole run is a task there
    (:func:`run_test`):
    ``run(coroutine, context=...)`` runs the coroutine as a task of its own
    (in debug mode, as ``IsolatedAsyncioTestCase``'s loop is) and waits for
    it; ``get_loop()``; ``close()`` cancels the tasks the test left running
    and closes the async generators it left open."""

    def __init__(self, loop: RunLoop) -> None:
        self._run_loop = loop
        self._tasks = _TestTasks(loop)
        #: the loop's async generators before the test's first phase (None: no phase yet)
        self._asyncgens_before: set[Any] | None = None
        self._closed = False

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._run_loop.loop

    def run(self, coroutine: Coroutine[Any, Any, T], *, context: contextvars.Context | None = None) -> T:
        if self._closed:
            coroutine.close()
            raise RuntimeError("nose2-sqltx: the test's runner is closed")
        if not self._run_loop.in_loop_thread():
            return run_test(self._run_loop, lambda: self.run(coroutine, context=context))
        from sqlalchemy.util import await_only

        loop = self._run_loop.loop
        if self._asyncgens_before is None:
            self._asyncgens_before = set(getattr(loop, "_asyncgens", ()))
        loop.set_task_factory(self._tasks)
        try:
            # In debug mode, as on IsolatedAsyncioTestCase's own loop: from
            # the phase's first step (timed, as a slow one is) to its end,
            # not for the making and the ending of its task, which in debug
            # mode record the stack they came from (about 40 µs each, six per
            # phase), here only this module's own frames, of use to nobody.
            task = loop.create_task(_phase(coroutine, loop), context=context)
            _set_debug(loop, True)
            caught, value = await_only(task)
        except asyncio.CancelledError:
            interrupted = self._run_loop.interrupted
            if interrupted is None:
                raise
            # The test's thread was interrupted: the test gets the interrupt
            # (a KeyboardInterrupt, which unittest lets through), not the cancel.
            raise interrupted from None
        finally:
            loop.set_task_factory(None)
            _set_debug(loop, False)
        if caught:
            raise value  # unittest's to handle, as from asyncio.Runner.run
        return value  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._asyncgens_before is None or not self._run_loop.alive:
            return
        if not self._run_loop.in_loop_thread():
            run_test(self._run_loop, self._close)
        else:
            self._close()

    def _close(self) -> None:
        from sqlalchemy.util import await_only

        await_only(self._finish())

    async def _finish(self) -> None:
        """What ``asyncio.Runner.close`` does for the test's own loop, for the test's share of the run's."""
        loop = asyncio.get_running_loop()
        left = [task for task in self._tasks.made if not task.done()]
        for task in left:
            task.cancel()
        if left:
            results = await asyncio.gather(*left, return_exceptions=True)
            for task, result in zip(left, results, strict=True):
                if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                    loop.call_exception_handler({
                        "message": "unhandled exception during asyncio.run() shutdown",
                        "exception": result, "task": task})
        before = self._asyncgens_before or set()
        generators = [g for g in set(getattr(loop, "_asyncgens", ())) if g not in before]
        if generators:
            await asyncio.gather(*(g.aclose() for g in generators), return_exceptions=True)
