"""``DatabaseTest``: the mixin that gives a TestCase its isolated database.

::

    class TestOrders(DatabaseTest, unittest.TestCase):
        @classmethod
        def setUpTestData(cls):           # once per class, rolled back after it
            cls.session.add(Customer(name="ada"))
            cls.session.commit()

        def test_order(self):             # each test in its own savepoint
            self.session.add(Order(customer_id=1))
            self.session.commit()         # real commit semantics, undone after the test

Like Django's TestCase, the test's savepoint is opened around ``setUp``, so a
``setUp`` override need not call ``super().setUp()``.

Code that needs real commits (LISTEN/NOTIFY, ``CREATE INDEX CONCURRENTLY``,
several connections that see each other's data) asks for them with
``real_commits = True`` on the class or ``@real_commits`` on a test.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from .classdata import wrap_new_attributes
from .isolation import IsolatedDatabase, active_database, is_running
from .oncommit import CommitCallbacks
from .queries import QueryCount, QueryFilter, RepeatedQueries
from .scopes import Scope

__unittest = True

__all__ = ["DatabaseTest", "allow_database", "allows_database", "asks_allow_database", "asks_real_commits",
           "wants_real_commits", "real_commits", "when_not_running", "database_for"]

F = TypeVar("F", bound=Callable[..., Any])

#: Opener = what to do when a DatabaseTest class starts and no run is open: (its kind, for messages) -> the run
Opener = Callable[[str], IsolatedDatabase]
_opener: Opener | None = None


def when_not_running(opener: Opener | None) -> None:
    """Say what opens the run when a ``DatabaseTest`` class starts and none
    is open: a runner adapter's choice (``python -m unittest``: open one
    now; nose2 and pytest open it before any test). None: raise what
    :func:`~nose2_sqltx.isolation.active_database` raises."""
    global _opener
    _opener = opener


def database_for(what: str = "DatabaseTest") -> IsolatedDatabase:
    """The running database for a test class (``what``: its kind), opened by
    the runner's opener (:func:`when_not_running`) if no run is open yet."""
    if not is_running() and _opener is not None:
        return _opener(what)
    return active_database(what)


def real_commits(test: F) -> F:
    """Decorator: this test really commits (see ``DatabaseTest.real_commits``)."""
    test._sqltx_real_commits = True  # type: ignore[attr-defined]
    return test


def allow_database(test: F) -> F:
    """Decorator for a test class or test that is not a ``DatabaseTest``:
    it may use the database although ``only-database-tests`` is set (each
    of its tests in a scope of its own, rolled back after it)."""
    test._sqltx_allow_database = True  # type: ignore[attr-defined]
    return test


def allows_database(cls: type | None, function: Any) -> bool:
    """Whether a test that is not a ``DatabaseTest`` (its class, if any, and
    its function) is marked with :func:`allow_database`."""
    return bool(getattr(cls, "_sqltx_allow_database", False) or getattr(function, "_sqltx_allow_database", False))


def asks_allow_database(test: Any) -> bool:
    """:func:`allows_database` for ``test``, a TestCase (under nose2, a
    function test is unittest's ``FunctionTestCase``, its function ``_testFunc``)."""
    function = getattr(test, "_testFunc", None) or getattr(test, getattr(test, "_testMethodName", ""), None)
    return allows_database(type(test), function)


def asks_real_commits(test: Any) -> bool:
    """Whether ``test`` (any TestCase) asks for real commits: ``real_commits
    = True`` on its class, or ``@real_commits`` on its method."""
    return wants_real_commits(type(test), getattr(test, getattr(test, "_testMethodName", ""), None))


def wants_real_commits(cls: type | None, function: Any) -> bool:
    """Whether a test (its class, if any, and its function) asks for real commits."""
    return getattr(cls, "real_commits", False) is True or bool(getattr(function, "_sqltx_real_commits", False))


class _Handle:
    """``session``/``connection``/``engine`` of the test's scope (on an
    instance) or of the class's scope (on the class, e.g. in setUpTestData)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type) -> Any:
        scope: Scope | None
        if obj is not None and obj.__dict__.get("_sqltx_scope") is not None:
            scope = obj.__dict__["_sqltx_scope"]
        else:
            scope = vars(owner).get("_sqltx_class_scope")
            if scope is None or scope.closed:
                if obj is None and not is_running():
                    return self  # test loaders scan class attributes before the run
                scope = active_database("DatabaseTest").current_scope
        return getattr(scope, self.name)


class DatabaseTest:
    """Mixin for ``unittest.TestCase``: each test runs in a rolled-back savepoint.

    ``self.session``: an ORM Session in the test transaction.
    ``self.connection``: a Connection in the test transaction (Core code, apps
    that take a connectable).
    ``self.engine``: an Engine whose every connection is the test transaction
    (apps that open their own connections or Sessions).

    ``self.databases``: the test's scopes on the run's other databases
    (``[sqltx:<name>]`` sections), by name, each with its own ``session``,
    ``connection``, ``engine`` and ``queries``:
    ``self.databases["analytics"].session``.

    ``self.queries``: the SQL the test has sent so far (through these
    handles and the app's redirected engines), one string per statement;
    :meth:`assertNumQueries` counts them.

    The same names on the class (``cls.session`` ...) are the class's scope,
    for :meth:`setUpTestData` and ``setUpClass`` overrides.

    ``real_commits = True`` on a class (or ``@real_commits`` on one test):
    its tests run outside the run's transaction, on ordinary connections
    that really commit and see each other's work. The schema, the fixtures
    and ``setUpTestData`` are made for real first; after each test the
    tables are emptied and the fixtures and class data made again; after
    the class (or the test) the tables are dropped and the run's
    transaction is rebuilt. That costs two schema builds per class and a
    refill per test, so keep these classes few.
    """

    _sqltx_class_scope: ClassVar[Scope | None] = None
    #: run this class's tests with real commits (see above)
    real_commits: ClassVar[bool] = False
    #: every test of this class starts from the same sequence values, and the
    #: class puts back the values it started from (None: the ``reset-sequences`` setting)
    reset_sequences: ClassVar[bool | None] = None

    session: Session = _Handle("session")  # type: ignore[assignment]
    connection: Connection = _Handle("connection")  # type: ignore[assignment]
    engine: Engine = _Handle("engine")  # type: ignore[assignment]
    databases: Mapping[str, Scope] = _Handle("databases")  # type: ignore[assignment]

    @classmethod
    def setUpTestData(cls) -> None:
        """Create data shared by every test of the class (runs once, in the
        class's savepoint; rolled back after the class).

        Attributes it sets on the class (``cls.ada = Customer(...)``) are per
        test, as in Django: each test reads its own copy, made on first read.
        An ORM object is loaded afresh in ``self.session`` (attached, current,
        its changes the test's own); anything else is a deep copy."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()  # type: ignore[misc]
        database = database_for()
        cls._sqltx_class_scope = None
        # The class scope is ended by a class cleanup, so it goes even when a
        # tearDownClass override forgets super() or setUpClass fails later.
        scope = database.begin_scope(setup=cls._sqltx_set_up_test_data, real_commits=cls.real_commits,
                                     reset_sequences=cls.reset_sequences,
                                     label=f"{cls.__module__}.{cls.__qualname__}'s class set-up")
        cls._sqltx_class_scope = scope
        cls.addClassCleanup(cls._sqltx_end_class, scope)  # type: ignore[attr-defined]

    @classmethod
    def _sqltx_set_up_test_data(cls) -> None:
        before = dict(vars(cls))
        cls.setUpTestData()
        wrap_new_attributes(cls, before)

    @classmethod
    def _sqltx_end_class(cls, scope: Scope) -> None:
        cls._sqltx_class_scope = None
        active_database("DatabaseTest").end_scope(scope)

    def _callSetUp(self) -> None:
        # unittest calls this inside its error handling, before setUp: an
        # error here is this test's error, and no super().setUp() is needed.
        database = active_database("DatabaseTest")
        # (the class's own real_commits is its scope's already)
        scope = database.begin_scope(real_commits=asks_real_commits(self), reset_sequences=self.reset_sequences,
                                     label=self.id())  # type: ignore[attr-defined]
        self.__dict__["_sqltx_scope"] = scope
        # Added first, so it runs last: after the user's own cleanups.
        self.addCleanup(self._sqltx_end_test, scope)  # type: ignore[attr-defined]
        super()._callSetUp()  # type: ignore[misc]

    def _callTestMethod(self, method: Callable[..., Any]) -> Any:
        # unittest reports a test's error before the cleanups run, the end of
        # the test's scope among them: the hint goes on first, and what the
        # error already says (a leak, a refused COMMIT) is not raised again at
        # the end, whichever runner reports it.
        try:
            return super()._callTestMethod(method)  # type: ignore[misc]
        except Exception as exc:
            active_database("DatabaseTest").annotate(exc, self.__dict__.get("_sqltx_scope"))
            raise

    @property
    def queries(self) -> list[str]:
        """The SQL of this test so far (its ``setUp`` included), in order."""
        return list(self._sqltx_current().queries)

    def _sqltx_current(self) -> Scope:
        scope = self.__dict__.get("_sqltx_scope")
        return scope if scope is not None else active_database("DatabaseTest").current_scope

    def assertNumQueries(self, num: int, func: Callable[..., Any] | None = None, /, *args: Any,
                         matching: str | re.Pattern[str] | None = None, table: Any = None, **kwargs: Any) -> Any:
        """Fail unless exactly ``num`` statements are sent inside the block::

            with self.assertNumQueries(2):
                place_order(self.engine, customer_id=1)

        or, like Django, ``self.assertNumQueries(2, place_order, self.engine, 1)``.
        The failure lists the statements. Only SQL counts: commits and
        rollbacks, which nose2-sqltx maps onto savepoints, do not.
        ``matching`` (a regular expression, case-insensitive) and ``table``
        (a name, ``Table`` or mapped class: the statement names it after
        FROM, JOIN, INTO or UPDATE) count only some statements:
        ``self.assertNumQueries(1, matching=r"^INSERT", table=Order)``. Both
        are the assertion's own, never passed on to ``func``.
        """
        return self._sqltx_block(QueryCount(self, self._sqltx_current(), num,
                                            counted=QueryFilter(matching, table)), func, args, kwargs)

    def assertMaxQueries(self, num: int, func: Callable[..., Any] | None = None, /, *args: Any,
                         matching: str | re.Pattern[str] | None = None, table: Any = None, **kwargs: Any) -> Any:
        """:meth:`assertNumQueries`, failing only above ``num``: a ceiling
        for a page or an endpoint, which fewer statements do not break."""
        return self._sqltx_block(QueryCount(self, self._sqltx_current(), num, at_most=True,
                                            counted=QueryFilter(matching, table)), func, args, kwargs)

    def assertNoRepeatedQueries(self, limit: int = 1, func: Callable[..., Any] | None = None, /, *args: Any,
                                matching: str | re.Pattern[str] | None = None, table: Any = None,
                                **kwargs: Any) -> Any:
        """Fail when one statement, its values aside, is sent more than
        ``limit`` times inside the block: the N+1 pattern (a lazy load for
        each row of a list)::

            with self.assertNoRepeatedQueries():
                render_orders(self.session)

        The failure prints each repeated statement with ``?`` for its
        values, how often it ran, and the lines of the app (or the test)
        that sent it. ``matching`` and ``table`` as in :meth:`assertNumQueries`.
        """
        return self._sqltx_block(RepeatedQueries(self, self._sqltx_current(), limit,
                                                 counted=QueryFilter(matching, table)), func, args, kwargs)

    def captureOnCommitCallbacks(self, *, execute: bool = False) -> CommitCallbacks:
        """Django's helper for SQLAlchemy: a context manager whose value is
        the list of after-commit callbacks (``event.listen(session,
        "after_commit", fn)``) that the commits inside the block would fire,
        each callable with no argument::

            with self.captureOnCommitCallbacks() as callbacks:
                place_order(...)
            self.assertEqual(len(callbacks), 1)
            callbacks[0]()  # send the mail now

        By default they are held back; ``execute=True`` lets them run at the
        commit as in production, and lists them all the same."""
        return CommitCallbacks(execute=execute)

    def _sqltx_block(self, block: Any, func: Callable[..., Any] | None, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> Any:
        if func is None:
            return block
        with block:
            return func(*args, **kwargs)

    def _sqltx_end_test(self, scope: Scope) -> None:
        self.__dict__["_sqltx_scope"] = None
        active_database("DatabaseTest").end_scope(scope)
