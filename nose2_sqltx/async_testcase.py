"""``AsyncDatabaseTest``: ``DatabaseTest`` for async code.

::

    class TestOrders(AsyncDatabaseTest, unittest.IsolatedAsyncioTestCase):
        @classmethod
        async def asyncSetUpTestData(cls):    # once per class, rolled back after it
            cls.session.add(Customer(name="ada"))
            await cls.session.commit()

        async def test_order(self):           # each test in its own savepoint
            self.session.add(Order(customer_id=1))
            await self.session.commit()       # real commit semantics, undone after the test

``self.session`` is an ``AsyncSession``, ``self.connection`` an
``AsyncConnection`` and ``self.engine`` an ``AsyncEngine``, all on the
test's savepoint. The run's ``dsn`` names an async driver; every test keeps
the loop ``IsolatedAsyncioTestCase`` gives it, and the run's connection,
which lives on a loop of its own, serves them all (see
:mod:`nose2_sqltx.runloop`).
"""

from __future__ import annotations

import unittest
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .errors import AsyncDriverRequiredError, LoopBlockedError
from .isolation import active_database, is_running
from .runloop import RunLoop, run_coroutine
from .testcase import DatabaseTest, _Handle, database_for
from .testloop import RunLoopRunner, run_test

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

    from .scopes import Scope

__unittest = True

__all__ = ["AsyncDatabaseTest"]


class AsyncDatabaseTest(DatabaseTest):
    """Mixin for ``unittest.IsolatedAsyncioTestCase``: each test runs in a
    rolled-back savepoint, with async handles.

    ``self.session``: an ``AsyncSession`` in the test transaction.
    ``self.connection``: an ``AsyncConnection`` in the test transaction.
    ``self.engine``: an ``AsyncEngine`` whose every connection is the test
    transaction (apps that open their own connections or sessions).

    Everything else is :class:`~nose2_sqltx.DatabaseTest`'s: the savepoint
    is opened around ``setUp`` and ``asyncSetUp`` (no ``super()`` call
    needed), ``real_commits``, ``reset_sequences``, ``self.queries``. Class
    data comes from :meth:`asyncSetUpTestData`; ``assertNumQueries``,
    ``assertMaxQueries`` and ``assertNoRepeatedQueries`` are async context
    managers too::

        async with self.assertNumQueries(1):
            await self.session.execute(select(Customer))

    The same names on the class (``cls.session`` ...) are the class's scope,
    for :meth:`asyncSetUpTestData`.
    """

    session: AsyncSession = _Handle("async_session")  # type: ignore[assignment]
    connection: AsyncConnection = _Handle("async_connection")  # type: ignore[assignment]
    engine: AsyncEngine = _Handle("async_engine")  # type: ignore[assignment]

    @classmethod
    async def asyncSetUpTestData(cls) -> None:
        """Create data shared by every test of the class (runs once, in the
        class's savepoint; rolled back after the class). Attributes it sets
        on the class are per test, as with ``setUpTestData``: an ORM object is
        loaded afresh in the test's session on first read."""

    @classmethod
    def setUpClass(cls) -> None:
        if not issubclass(cls, unittest.IsolatedAsyncioTestCase):
            # A plain TestCase would call the async tests without awaiting them: they would pass unrun.
            raise TypeError(
                f"{cls.__qualname__} uses AsyncDatabaseTest with {_bases(cls)}; its async tests would never "
                "run. Mix it with unittest.IsolatedAsyncioTestCase: "
                f"class {cls.__name__}(AsyncDatabaseTest, unittest.IsolatedAsyncioTestCase)"
            )
        database = database_for("AsyncDatabaseTest")
        if not database.backend.is_async:
            raise AsyncDriverRequiredError(database.masked_url, database.backend.driver)
        super().setUpClass()

    @classmethod
    def setUpTestData(cls) -> None:
        run_coroutine(cls.asyncSetUpTestData())

    def run(self, result: unittest.TestResult | None = None) -> unittest.TestResult | None:
        # The whole test (its scope, set-up, method, tear-down, cleanups) is a
        # task on the run's loop, where the driver is awaited without a hop
        # from one thread to another (nose2_sqltx.testloop).
        loop = _run_loop_for(self)
        if loop is None:
            return super().run(result)  # type: ignore[misc, no-any-return]
        self.__dict__["_sqltx_run_loop"] = loop
        try:
            return run_test(loop, lambda: super(AsyncDatabaseTest, self).run(result))  # type: ignore[misc, no-any-return]
        finally:
            self.__dict__["_sqltx_run_loop"] = None

    def _callTestMethod(self, method: Callable[..., Any]) -> Any:
        try:
            return super()._callTestMethod(method)
        except Exception as exc:
            loop = self.__dict__.get("_sqltx_run_loop")
            if loop is not None:
                _note_reported(exc, loop.blocked_errors)
            raise

    def _sqltx_end_test(self, scope: Scope) -> None:
        super()._sqltx_end_test(scope)
        loop = self.__dict__.get("_sqltx_run_loop")
        for error in () if loop is None else loop.blocked_errors:
            if not error.reported:
                # (a thread of the app's got it, and the app swallowed it)
                error.reported = True
                raise error

    def _setupAsyncioRunner(self) -> None:
        # IsolatedAsyncioTestCase's own hook (Python 3.11 to 3.13): its
        # Runner, for a test that runs on the run's loop, is one on that loop.
        loop = self.__dict__.get("_sqltx_run_loop")
        if loop is None:
            super()._setupAsyncioRunner()  # type: ignore[misc]
            return
        self._asyncioRunner = RunLoopRunner(loop)

    def _sqltx_block(self, block: Any, func: Callable[..., Any] | None, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> Any:
        """The query assertions (``assertNumQueries``, ``assertMaxQueries``,
        ``assertNoRepeatedQueries``) of ``DatabaseTest``, async: ``async with
        self.assertNumQueries(2): ...``, or ``await
        self.assertNumQueries(2, coroutine_function, *args)``."""
        if func is None:
            return block
        return _counted(block, func(*args, **kwargs))


async def _counted(block: Any, awaitable: Awaitable[Any]) -> Any:
    async with block:
        return await awaitable


def _note_reported(exc: BaseException, errors: list[LoopBlockedError]) -> None:
    """Mark the errors among ``errors`` that ``exc`` is, or carries, as the test's reported error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for error in errors:
            if current is error:
                error.reported = True
        current = current.__cause__ or current.__context__


def _run_loop_for(test: AsyncDatabaseTest) -> RunLoop | None:
    """The run's loop, for ``test``'s coroutines; None where the test keeps a loop of its own."""
    if getattr(test, "loop_factory", None) is not None or not hasattr(test, "_setupAsyncioRunner"):
        return None  # a loop of the test's choosing (Python 3.13), or a unittest that works otherwise
    if not is_running():
        return None
    database = active_database("AsyncDatabaseTest")
    if not database.backend.is_async or database.async_test_loop != "run":
        return None
    return database.backend.loop


def _bases(cls: type) -> str:
    return ", ".join(base.__name__ for base in cls.__bases__ if base is not AsyncDatabaseTest) or "no TestCase"
