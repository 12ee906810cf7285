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
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from . import isolation
from .isolation import Scope, active_database

__unittest = True

__all__ = ["DatabaseTest"]


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
                if obj is None and isolation._active is None:
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

    The same names on the class (``cls.session`` ...) are the class's scope,
    for :meth:`setUpTestData` and ``setUpClass`` overrides.
    """

    _sqltx_class_scope: ClassVar[Scope | None] = None

    session: Session = _Handle("session")  # type: ignore[assignment]
    connection: Connection = _Handle("connection")  # type: ignore[assignment]
    engine: Engine = _Handle("engine")  # type: ignore[assignment]

    @classmethod
    def setUpTestData(cls) -> None:
        """Create data shared by every test of the class (runs once, in the
        class's savepoint; rolled back after the class)."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()  # type: ignore[misc]
        database = active_database("DatabaseTest")
        cls._sqltx_class_scope = None
        # The class scope is ended by a class cleanup, so it goes even when a
        # tearDownClass override forgets super() or setUpClass fails later.
        scope = database.begin_scope(setup=cls.setUpTestData)
        cls._sqltx_class_scope = scope
        cls.addClassCleanup(cls._sqltx_end_class, scope)  # type: ignore[attr-defined]

    @classmethod
    def _sqltx_end_class(cls, scope: Scope) -> None:
        cls._sqltx_class_scope = None
        active_database("DatabaseTest").end_scope(scope)

    def _callSetUp(self) -> None:
        # unittest calls this inside its error handling, before setUp: an
        # error here is this test's error, and no super().setUp() is needed.
        database = active_database("DatabaseTest")
        scope = database.begin_scope()
        self.__dict__["_sqltx_scope"] = scope
        # Added first, so it runs last: after the user's own cleanups.
        self.addCleanup(self._sqltx_end_test, scope)  # type: ignore[attr-defined]
        super()._callSetUp()  # type: ignore[misc]

    def _sqltx_end_test(self, scope: Scope) -> None:
        self.__dict__["_sqltx_scope"] = None
        active_database("DatabaseTest").end_scope(scope)
