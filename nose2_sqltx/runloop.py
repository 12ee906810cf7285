"""The run's event loop: where an async driver's connection lives.

An asyncpg connection (and psycopg's ``AsyncConnection``, aiosqlite's,
aiomysql's) belongs to the event loop it was made on. The run's connection
must outlive every test, while ``unittest.IsolatedAsyncioTestCase`` gives
each test a loop of its own (Python 3.11 to 3.13), Starlette's
``TestClient`` runs the app on a loop in another thread, and the run's own
bookkeeping (savepoints between tests) is plain sync code with no loop at
all. So the connection gets a loop of its own: :class:`RunLoop` runs it in
a thread for the whole run, and every call reaches the driver through
:meth:`RunLoop.call`, from wherever it is made:

- SQLAlchemy's async adapters are sync code that hands each driver
  coroutine to ``await_``, which passes it to the greenlet that runs them
  (SQLAlchemy's ``greenlet_spawn``). :meth:`RunLoop.call` runs the adapter
  call in a greenlet of its own and sends each coroutine it yields to the
  run's loop.
- Called from async code (the adapter call is made under SQLAlchemy's
  ``greenlet_spawn``, as ``await session.execute()`` does), the caller's
  loop awaits the result without blocking: its other tasks go on.
- Called from sync code (the run between tests, a ``DatabaseTest`` in the
  same run, a thread), the caller waits for the result, as with a sync driver.

One coroutine at a time runs on each connection, in the order they come
(the driver refuses two at once; two Sessions of one test share it).
"""

from __future__ import annotations

import _thread
import asyncio
import concurrent.futures
import functools
import inspect
import os
import sys
import sysconfig
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from .environment import DEFAULT_LOCK_TIMEOUT_MS
from .errors import LoopBlockedError, LoopWaitError
from .greenlets import Done, give_back, job, take, worker_class

__unittest = True

__all__ = ["RunLoop", "Turns", "LoopBound", "OnRunLoop", "in_bridge", "run_coroutine"]

T = TypeVar("T")


@functools.cache
def _bridge_class() -> Any:
    # greenlet is imported only by runs with an async driver (SQLAlchemy 2.1 no longer requires it)
    return worker_class(
        "Bridge", "A greenlet SQLAlchemy's ``await_`` accepts: it hands each awaitable to its parent.",
        __sqlalchemy_greenlet_provider__=True, sqltx_bridge=True,
        #: the run loop the current call's awaits go to
        sqltx_loop=None)


def in_bridge() -> bool:
    """Whether this code runs in a call through a run's loop (its awaits go there)."""
    import greenlet

    return bool(getattr(greenlet.getcurrent(), "sqltx_bridge", False))


async def _cancel_by(future: concurrent.futures.Future[T] | asyncio.Future[T], cancel: Callable[[], object]) -> T:
    """Await ``future``. If the awaiting task is cancelled, call ``cancel``
    (in a thread: it may block) to end the statement, and wait for it to
    end before the cancel goes on: the connection's bookkeeping must see the
    statement's real end."""
    waiting = asyncio.wrap_future(future)
    try:
        return await asyncio.shield(waiting)
    except asyncio.CancelledError:
        threading.Thread(target=cancel, name="nose2-sqltx cancel", daemon=True).start()
        while not waiting.done():
            try:
                await asyncio.shield(waiting)
            except asyncio.CancelledError:
                continue
            except BaseException:  # noqa: BLE001 - the statement's end, cancelled or failed: the cancel goes on
                break
        raise


def _gives_way(current: Any) -> bool:
    """Whether a caller in greenlet ``current`` runs under SQLAlchemy's
    ``greenlet_spawn`` on a loop of its own, which should go on while it
    waits (else it blocks, as sync code does; so does a call through another
    run loop, whose driver is not a loop to give way to)."""
    return bool(getattr(current, "__sqlalchemy_greenlet_provider__", False)) and \
        getattr(current, "sqltx_loop", None) is None


class RunLoop:
    """An event loop in a thread of its own, for the run's async connections.

    A context manager; :meth:`close` stops the loop and joins its thread.
    """

    def __init__(self, name: str = "nose2-sqltx run loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        #: the loop's thread's ident while it serves (in_loop_thread is asked at every driver call)
        self._ident: int | None = None
        self._locks: weakref.WeakKeyDictionary[object, asyncio.Lock] = weakref.WeakKeyDictionary()
        #: the driver coroutine running now, for a cancel from another thread
        self._running: asyncio.Task[Any] | None = None
        #: whether a test runs on this loop now (testloop), and since
        #: when a step of one has run without giving the loop back
        self._in_test = False
        self._stuck_since: float | None = None
        #: the step a wait gave up on, and how long that wait was
        self._gave_up: tuple[float, float] | None = None
        #: the waits that gave up while the current test ran (its end fails the test with them)
        self.blocked_errors: list[LoopBlockedError] = []
        #: what interrupted the thread that waits for the current test (its task is cancelled)
        self.interrupted: BaseException | None = None
        #: how long (s) another thread waits for the connection while a
        #: test's step blocks the loop (None: for ever); the run's lock-timeout
        self.blocked_limit: float | None = DEFAULT_LOCK_TIMEOUT_MS / 1000
        self._thread.start()
        self._ready.wait()

    def _serve(self) -> None:
        self._ident = threading.get_ident()
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            while True:
                try:
                    self.loop.run_forever()
                    return  # stopped by close()
                except (KeyboardInterrupt, SystemExit):
                    # Raised by a task of a test's (testloop): it interrupts
                    # the test's thread, as it would have stopped the test's
                    # own loop; the run's loop and connection go on.
                    _thread.interrupt_main()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()
            self._ident = None  # (a later thread may be given the same number)

    def __enter__(self) -> RunLoop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def in_loop_thread(self) -> bool:
        return threading.get_ident() == self._ident

    # -- calls -------------------------------------------------------------------
    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)``, a sync function that awaits driver
        coroutines through SQLAlchemy's ``await_``, with those coroutines run
        on this loop (see the module docstring)."""
        return self.call_for(None, fn, *args, **kwargs)

    def call_for(self, owner: object, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """:meth:`call` on behalf of ``owner`` (a connection): the coroutines
        of calls for one owner run one at a time, in the order they come."""
        import greenlet

        current = greenlet.getcurrent()
        if getattr(current, "sqltx_loop", None) is self:
            return fn(*args, **kwargs)  # already inside a call: its driver loop is ours
        if owner is None and getattr(current, "sqltx_gate", False) and self.in_loop_thread():
            # A test's task on this loop (testloop): its greenlet hands what
            # fn awaits to the task, which awaits it, as a bridge's call would
            # have it awaited (for no owner, nothing to take turns on).
            return fn(*args, **kwargs)
        give_way = _gives_way(current)
        # (the caller's contextvars, as SQLAlchemy's own greenlets keep them)
        bridge = take(_bridge_class(), current, current.gr_context)
        bridge.sqltx_loop = self
        result = bridge.switch(job(fn, *args, **kwargs))
        while not isinstance(result, Done):
            try:
                value = self._await_here(result, give_way, owner)
            except BaseException:  # noqa: BLE001 - handed to the call, as SQLAlchemy's greenlet_spawn does
                result = bridge.throw(*sys.exc_info())
            else:
                result = bridge.switch(value)
        bridge.sqltx_loop = None  # (an idle bridge keeps no run loop alive after its run)
        give_back(bridge)
        return result.result()  # type: ignore[no-any-return]

    def run(self, awaitable: Awaitable[T], owner: object = None) -> T:
        """Wait for one driver coroutine, run on this loop: what
        :meth:`call_for` does for a call that awaits once, without a greenlet
        of its own where none is needed (the run's own statements)."""
        import greenlet

        current = greenlet.getcurrent()
        if getattr(current, "sqltx_loop", None) is self:
            from sqlalchemy.util import await_only

            return await_only(awaitable)
        return self._await_here(awaitable, _gives_way(current), owner)  # type: ignore[no-any-return]

    def _await_here(self, awaitable: Awaitable[Any], give_way: bool, owner: object) -> Any:
        if not give_way and self.in_loop_thread():
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()
            raise LoopWaitError(awaitable)
        if give_way and self.in_loop_thread():
            # A test's task on this loop (testloop): the driver is awaited
            # right here, in the caller's task, as in production.
            from sqlalchemy.util import await_only

            cancel = getattr(owner, "sqltx_cancel_statement", None)
            if cancel is None:
                return await_only(self._one_at_a_time(awaitable, owner))
            task = self.loop.create_task(self._one_at_a_time(awaitable, owner))
            return await_only(_cancel_by(task, cancel))
        future = self._submit(awaitable, owner)
        if give_way:
            from sqlalchemy.util import await_only  # the caller's greenlet_spawn awaits it

            # A caller cancelled while it waits (asyncio.wait_for, a cancelled
            # task) cancels the statement, as in production, and waits for
            # its end; where the driver's own cancel would close the
            # connection, the owner's (KILL QUERY) does it instead.
            cancel = getattr(owner, "sqltx_cancel_statement", None) or self.cancel_running
            return await_only(self._bounded(future, awaitable, None if owner is None else cancel))
        return self._wait(future, awaitable)

    # -- another thread's wait while a test blocks the loop (testloop) ------------
    def _wait(self, future: concurrent.futures.Future[T], awaitable: Awaitable[Any]) -> T:
        """``future.result()``, for a thread that waits for the run's
        connection: bounded while a test's step blocks this loop (see
        :mod:`nose2_sqltx.testloop`), which would otherwise be for ever."""
        if not self._in_test or self.blocked_limit is None:
            return future.result()
        started = time.monotonic()
        while True:
            self._give_up_if_blocked(future, awaitable, started)
            try:
                return future.result(timeout=0.1)
            except concurrent.futures.TimeoutError:
                pass

    async def _bounded(self, future: concurrent.futures.Future[T], awaitable: Awaitable[Any],
                       cancel: Callable[[], object] | None) -> T:
        """:meth:`_wait` for a caller on a loop of its own (which goes on meanwhile)."""
        if self._in_test and self.blocked_limit is not None:
            started = time.monotonic()
            waiting = asyncio.wrap_future(future)
            while not waiting.done():
                self._give_up_if_blocked(future, awaitable, started)
                await asyncio.wait([waiting], timeout=0.1)
        if cancel is None:
            return await asyncio.wrap_future(future)
        return await _cancel_by(future, cancel)

    def _give_up_if_blocked(self, future: concurrent.futures.Future[Any], awaitable: Awaitable[Any],
                            started: float) -> None:
        """Raise :class:`LoopBlockedError` if a test's step has blocked the
        loop for longer than :attr:`blocked_limit` and this caller has waited
        as long, or if a wait already gave up on this same step: the call,
        not begun, is dropped (a call the loop has begun is waited for)."""
        stuck = self._stuck_since
        if stuck is None:
            return
        failed = self._gave_up
        now = time.monotonic()
        limit = self.blocked_limit or 0.0
        if failed is not None and failed[0] == stuck:
            waited = failed[1]
        elif now - stuck >= limit and now - started >= limit:
            waited = now - started
        else:
            return
        if future.cancel():
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()  # never to be awaited
            error = LoopBlockedError(waited, self._blocking_frame())
            if failed is None or failed[0] != stuck:
                self._gave_up = (stuck, waited)
                self.blocked_errors.append(error)
            raise error

    # -- a test's tasks on this loop (testloop) -----------------------------------
    def on_loop(self, fn: Callable[[], T]) -> T:
        """``fn()``, called in the loop's thread (from another thread)."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(call)
        return future.result()

    def run_task(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run the coroutine ``make()`` makes as a task on this loop, for a
        test (its whole run: :func:`nose2_sqltx.testloop.run_test`),
        and wait for its end in this thread. Interrupted here (Ctrl-C), the
        task is cancelled, and its end awaited, before the interrupt goes on."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        holder: list[asyncio.Task[None]] = []

        async def whole() -> None:
            # The outcome handed over as the coroutine ends, not from a done
            # callback on the loop's next turn: the waiting thread goes on
            # that much sooner (its wait is most of a test's own cost).
            try:
                future.set_result(await make())
            except asyncio.CancelledError:
                future.set_exception(asyncio.CancelledError())
                raise
            except BaseException as exc:  # noqa: BLE001 - the waiting thread's (raised here, it would stop the loop)
                future.set_exception(exc)

        def start() -> None:
            task = self.loop.create_task(whole())
            holder.append(task)
            task.add_done_callback(cancelled_unstarted)

        def cancelled_unstarted(_: asyncio.Task[None]) -> None:
            if not future.done():  # (a task cancelled before its first step never runs whole())
                future.set_exception(asyncio.CancelledError())

        self._in_test = True
        self._gave_up = None
        self.blocked_errors = []
        self.interrupted = None
        try:
            self.loop.call_soon_threadsafe(start)
            try:
                return future.result()
            except BaseException as exc:
                if not future.done():
                    # Interrupted here (Ctrl-C, SIGTERM): the test's task is
                    # cancelled, and ends first, so that its statements end
                    # too; the test sees the interrupt (testloop), as on a
                    # loop of its own.
                    self.interrupted = exc
                    self.loop.call_soon_threadsafe(lambda: holder and holder[0].cancel())
                    concurrent.futures.wait([future])
                raise
        finally:
            self._in_test = False

    def stepping(self, started: float | None) -> float | None:
        """Mark a test's step as running since ``started`` (None: none is);
        returns the mark it replaces."""
        before, self._stuck_since = self._stuck_since, started
        return before

    def _blocking_frame(self) -> tuple[str, ...]:
        """Where the loop's thread is now: the innermost frame of an
        installed package, if any, and the innermost of the project's own
        code (neither the standard library nor an installed package)."""
        frame = sys._current_frames().get(self._thread.ident or -1)
        packages = tuple(sysconfig.get_paths()[key] + os.sep for key in ("purelib", "platlib"))
        stdlib = os.path.dirname(threading.__file__) + os.sep
        here = os.path.dirname(__file__) + os.sep
        found: list[str] = []
        while frame is not None:
            name = frame.f_code.co_filename
            package = name.startswith(packages) and not name.startswith(here)
            own = not name.startswith((stdlib, here, "<")) and not name.startswith(packages)
            if (package and not found) or own:
                found.append(f"{name}:{frame.f_lineno} in {frame.f_code.co_name}")
                if own:
                    break
            frame = frame.f_back
        return tuple(found)

    def _submit(self, awaitable: Awaitable[T], owner: object) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(self._one_at_a_time(awaitable, owner), self.loop)

    async def _one_at_a_time(self, awaitable: Awaitable[T], owner: object) -> T:
        if owner is None:
            return await awaitable
        lock = self._locks.get(owner)
        if lock is None:
            lock = self._locks[owner] = asyncio.Lock()
        async with lock:
            self._running = asyncio.current_task()
            try:
                return await awaitable
            finally:
                self._running = None

    def cancel_running(self) -> bool:
        """Cancel the connection's driver coroutine running now (from any thread); the
        driver sends the server its cancel request. False if none runs."""
        running = self._running
        if running is None:
            return False
        self.loop.call_soon_threadsafe(running.cancel)
        return True

    def close(self) -> None:
        """Stop the loop (its pending work is cancelled) and join its thread."""
        if not self._thread.is_alive():
            return
        self.loop.call_soon_threadsafe(self._cancel_all_and_stop)
        self._thread.join()

    def _cancel_all_and_stop(self) -> None:
        for task in asyncio.all_tasks(self.loop):
            task.cancel()
        self.loop.stop()



def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end from sync code (``asyncSetUpTestData``
    from ``setUpClass``): on a loop of its own, in a thread of its own if
    this thread already runs one; in a test's task on the run's loop (the
    class's set-up made again after a raw COMMIT), right there."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    from greenlet import getcurrent

    if getattr(getcurrent(), "sqltx_gate", False):
        from sqlalchemy.util import await_only

        # (a thread of its own would wait for this loop, which waits for it)
        return await_only(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="nose2-sqltx") as pool:
        return pool.submit(asyncio.run, coroutine).result()


class Turns:
    """A reentrant lock whose holder is a thread or an asyncio task.

    What ``threading.RLock`` is to threads, for the run's connection over an
    async driver: tasks of one loop share a thread, so an RLock would let
    two of them in at once. The holder is the greenlet the sync code runs
    in (SQLAlchemy's, for a task's ``await session.commit()``; the thread's
    own, for sync code). A task that finds the lock taken gives way to its
    loop until it is free, so that the holder, maybe a task of the same
    loop, can finish; a thread waits.
    """

    def __init__(self) -> None:
        # Taken and let go several times per test: a plain lock, and the
        # condition's wake-up only when a thread waits (a task polls).
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._waiting = 0
        self._owner: Any = None
        #: the owner's call when it took the lock (a worker greenlet runs call after call: greenlets)
        self._owner_call = 0
        self._depth = 0

    @staticmethod
    def _me() -> Any:
        import greenlet  # (a module import, not a name from it: no import machinery per call)

        current = greenlet.getcurrent()
        while getattr(current, "sqltx_bridge", False):
            current = current.parent  # a call through the run's loop acts for its caller
        return current

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        me = self._me()
        with self._mutex:
            if self._take(me):
                return
            if not getattr(me, "__sqlalchemy_greenlet_provider__", False):
                self._waiting += 1
                try:
                    while not self._take(me):
                        self._cond.wait(0.05)  # (and look again whether the holder is gone)
                finally:
                    self._waiting -= 1
                return
        from sqlalchemy.util import await_only

        while True:
            await_only(asyncio.sleep(0.0005))
            with self._mutex:
                if self._take(me):
                    return

    def _take(self, me: Any) -> bool:
        call = getattr(me, "sqltx_call", 0)
        if self._owner is not None and (getattr(self._owner, "dead", False)
                                        or getattr(self._owner, "sqltx_call", 0) != self._owner_call):
            # Its holder is gone without letting go (a task cancelled in the
            # middle of a statement, whose events never came; or that task's
            # greenlet, which now runs another call): nothing holds it.
            self._owner, self._depth = None, 0
        if self._owner is None or self._owner is me:
            self._owner, self._owner_call = me, call
            self._depth += 1
            return True
        return False

    def release(self) -> None:
        with self._mutex:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                if self._waiting:
                    self._cond.notify_all()


class OnRunLoop:
    """An awaitable of the driver's, run on the run's loop whichever loop awaits it."""

    __slots__ = ("_awaitable", "_loop", "_owner")

    def __init__(self, loop: RunLoop, awaitable: Awaitable[Any], owner: object) -> None:
        self._loop = loop
        self._awaitable = awaitable
        self._owner = owner

    def __await__(self) -> Any:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop.loop:
            result = yield from self._awaitable.__await__()
        else:
            result = yield from asyncio.wrap_future(self._loop._submit(self._awaitable, self._owner)).__await__()
        return LoopBound.wrap(result, self._loop, self._owner)


class LoopBound:
    """A driver object (the driver's connection, a prepared statement, a
    cursor) whose coroutines run on the run's loop, for code that reaches
    past SQLAlchemy's adapter from another loop: the dialect's set-up of a
    connection an app engine was handed during the run, ``driver_connection``."""

    def __init__(self, target: Any, loop: RunLoop, owner: object) -> None:
        self._sqltx_target = target
        self._sqltx_loop = loop
        self._sqltx_owner = owner

    @staticmethod
    def wrap(value: Any, loop: RunLoop, owner: object) -> Any:
        """``value`` bound to the loop if it is a driver object with coroutines, else as it is."""
        return LoopBound(value, loop, owner) if _has_coroutines(type(value)) else value

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._sqltx_target, name)
        if not callable(value) or isinstance(value, type):
            return value
        loop, owner = self._sqltx_loop, self._sqltx_owner

        def call(*args: Any, **kwargs: Any) -> Any:
            result = value(*args, **kwargs)
            if inspect.isawaitable(result):
                return OnRunLoop(loop, result, owner)
            return LoopBound.wrap(result, loop, owner)

        return call

    def __repr__(self) -> str:
        return f"<{self._sqltx_target!r} on the run's loop>"


#: per class: whether it has coroutine methods (a driver's object that needs the run's loop)
_coroutine_classes: dict[type, bool] = {}


def _has_coroutines(cls: type) -> bool:
    known = _coroutine_classes.get(cls)
    if known is None:
        known = cls.__module__.split(".")[0] not in ("builtins", "sqlalchemy", "nose2_sqltx") and any(
            inspect.iscoroutinefunction(getattr(cls, name, None)) for name in dir(cls) if not name.startswith("__"))
        _coroutine_classes[cls] = known
    return known
