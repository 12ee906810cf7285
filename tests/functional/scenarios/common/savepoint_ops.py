"""Random sequences of transaction control, played on one handle.

The same sequence is played inside a test (under nose2-sqltx) and on an
ordinary engine with real commits (the oracle); what each read saw, every
error and the rows left at the end must be the same.
"""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select

#: how often each step is drawn
STEPS = ("begin_nested",) * 3 + ("release", "rollback_nested", "commit", "rollback", "insert", "insert",
                                  "flush", "read")
#: the row every sequence starts from (class data, committed before the test)
START = "class"


def rows_table(name: str, metadata: MetaData | None = None) -> Table:
    return Table(name, metadata or MetaData(), Column("id", Integer, primary_key=True), Column("name", String(20)))


def sequence(seed: int, length: int = 40) -> list[str]:
    rnd = random.Random(seed)
    return [rnd.choice(STEPS) for _ in range(length)]


def play(handle: Any, table: Table, steps: list[str]) -> list[list[Any]]:
    """Play ``steps`` on ``handle`` (a Session or a Connection); return what was seen.

    An error is recorded with its step and class, then the handle is rolled
    back, as an app that catches it would do.
    """
    seen: list[list[Any]] = []
    nested: list[Any] = []
    for i, step in enumerate(steps):
        try:
            if step == "begin_nested":
                nested.append(handle.begin_nested())
            elif step == "release" and nested:
                nested.pop().commit()
            elif step == "rollback_nested" and nested:
                nested.pop().rollback()
            elif step == "commit":
                handle.commit()
                nested.clear()
            elif step == "rollback":
                handle.rollback()
                nested.clear()
            elif step == "insert":
                handle.execute(insert(table).values(name=f"r{i}"))
            elif step == "flush" and hasattr(handle, "flush"):
                handle.flush()
            elif step == "read":
                seen.append(["read", i, sorted(handle.scalars(select(table.c.name)))])
        except Exception as exc:  # recorded, compared with the oracle's
            seen.append(["error", i, step, type(exc).__name__])
            handle.rollback()
            nested.clear()
    handle.rollback()
    seen.append(["end", sorted(handle.scalars(select(table.c.name)))])
    return seen
