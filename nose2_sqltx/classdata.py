"""Class-level data, per test: what ``setUpTestData`` sets on the class.

As in Django's ``TestCase``, each test sees its own copy of every attribute
``setUpTestData`` set, made the first time the test reads it (a test that
never reads one pays nothing):

- an ORM object (also inside lists, tuples, sets and dicts) is loaded afresh
  in the test's Session by its primary key: attached to ``self.session``
  (an ``AsyncSession`` in an ``AsyncDatabaseTest``),
  current (the class's data as the class made it, whatever earlier tests
  did), and a change to it never reaches another test;
- any other value is a deep copy (a value that cannot be copied, such as an
  engine or a client, is shared as it is).

On the class (``cls.attr``, in ``setUpTestData`` or ``setUpClass``) the
attribute is the object ``setUpTestData`` made.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session

__unittest = True

__all__ = ["ClassData", "wrap_new_attributes"]


class ClassData:
    """A class attribute set by ``setUpTestData``, copied per test on first read."""

    def __init__(self, name: str, value: Any) -> None:
        self.name = name
        self.value = value

    def __get__(self, test: Any, owner: type) -> Any:
        if test is None:
            return self.value
        # an AsyncSession's objects live in its sync Session, which the run's connection serves from any code
        fresh = _fresh(self.value, lambda: getattr(test.session, "sync_session", test.session))
        # Kept on the test: later reads are plain attribute reads, and an
        # assignment in the test replaces the test's copy only.
        test.__dict__[self.name] = fresh
        return fresh


def wrap_new_attributes(cls: type, before: dict[str, Any]) -> None:
    """Make every attribute of ``cls`` that is new or changed since ``before``
    (a copy of ``vars(cls)``) a :class:`ClassData`."""
    for name, value in list(vars(cls).items()):
        if name.startswith("__") or isinstance(value, (ClassData, classmethod, staticmethod, property)):
            continue
        if name in before and before[name] is value:
            continue
        setattr(cls, name, ClassData(name, value))


def _fresh(value: Any, session: Callable[[], Session]) -> Any:
    state = inspect(value, raiseerr=False) if not isinstance(value, type) else None
    if state is not None and hasattr(state, "identity"):
        if state.identity is None:  # never flushed: not in the database to load from
            return value
        return session().get(state.class_, state.identity)
    if isinstance(value, (list, tuple, set, frozenset)) and _holds_orm(value):
        return type(value)(_fresh(item, session) for item in value)
    if isinstance(value, dict) and _holds_orm(value.values()):
        return {key: _fresh(item, session) for key, item in value.items()}
    try:
        return copy.deepcopy(value)
    except Exception:  # noqa: BLE001 - an engine, a client, a lock: shared as it is
        return value


def _holds_orm(values: Any) -> bool:
    return any((inspect(item, raiseerr=False) is not None and hasattr(inspect(item), "identity"))
               or isinstance(item, (list, tuple, set, frozenset, dict)) for item in values)
