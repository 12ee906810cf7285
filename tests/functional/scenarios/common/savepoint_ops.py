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


#: the steps of two handles: each step is one handle's
TWO_STEPS = ("begin_nested", "release", "rollback_nested", "commit", "rollback", "insert", "insert", "read")


def two_sequence(seed: int, length: int = 30, *, turns: bool = False) -> list[tuple[int, str]]:
    """Steps of two handles, freely interleaved; or (``turns``) in turns: each
    handle's run of steps ends with its commit or rollback before the other
    writes, with the other handle's reads in between (what the shared
    transaction must always give as production does)."""
    rnd = random.Random(seed)
    if not turns:
        return [(rnd.randrange(2), rnd.choice(TWO_STEPS)) for _ in range(length)]
    steps: list[tuple[int, str]] = []
    who = 0
    while len(steps) < length:
        for _ in range(rnd.randrange(2, 8)):
            if rnd.random() < 0.15:
                steps.append((1 - who, "read"))
            steps.append((who, rnd.choice(TWO_STEPS[:3] + TWO_STEPS[5:])))  # no commit/rollback inside a turn
        steps.append((who, rnd.choice(("commit", "rollback"))))
        who = 1 - who
    return steps


def play_two(handles: list[Any], table: Table, steps: list[tuple[int, str]], *, shared: bool) -> list[list[Any]]:
    """Play ``steps`` on two handles. ``shared``: both are in one test
    transaction (under the plugin), where a read sees both handles' rows; in
    production (not shared) a read is recorded as what the two handles see
    together, which is what one shared transaction shows. A refused call
    (SharedTransactionError) ends the sequence under the plugin."""
    seen: list[list[Any]] = []
    nested: list[list[Any]] = [[], []]
    for i, (who, step) in enumerate(steps):
        handle = handles[who]
        try:
            if step == "begin_nested":
                nested[who].append(handle.begin_nested())
            elif step == "release" and nested[who]:
                nested[who].pop().commit()
            elif step == "rollback_nested" and nested[who]:
                nested[who].pop().rollback()
            elif step in ("commit", "rollback"):
                getattr(handle, step)()
                nested[who].clear()
            elif step == "insert":
                handle.execute(insert(table).values(name=f"{'ab'[who]}{i}"))
            elif step == "read":
                names = set(handle.scalars(select(table.c.name)))
                if not shared:
                    names |= set(handles[1 - who].scalars(select(table.c.name)))
                seen.append(["read", i, sorted(names)])
        except Exception as exc:  # recorded, compared with the oracle's
            if type(exc).__name__ == "SharedTransactionError":
                seen.append(["refused", i])
                return seen
            seen.append(["error", i, step, type(exc).__name__])
            handle.rollback()
            nested[who].clear()
    try:
        for handle in handles:
            handle.rollback()
    except Exception as exc:
        if type(exc).__name__ != "SharedTransactionError":
            raise
        seen.append(["refused", len(steps)])
        return seen
    seen.append(["end", sorted(handles[0].scalars(select(table.c.name)))])
    return seen
