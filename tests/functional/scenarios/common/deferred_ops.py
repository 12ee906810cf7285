"""Deferred constraints at an app's commit: the same steps under the plugin
and on an ordinary engine with real commits (the oracle)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, UniqueConstraint, func, insert, select
from sqlalchemy import delete as sql_delete
from sqlalchemy.orm import Session


def tables(prefix: str, metadata: MetaData | None = None, *, deferred_unique: bool = True) -> tuple[Table, Table]:
    """A parent and a child with a deferred foreign key; the parent's code
    is unique, deferred, where the database has such constraints (SQLite has not)."""
    metadata = metadata or MetaData()
    unique = [UniqueConstraint("code", deferrable=True, initially="DEFERRED")] if deferred_unique else []
    parent = Table(f"{prefix}_parent", metadata, Column("id", Integer, primary_key=True),
                   Column("code", String(10)), *unique)
    child = Table(f"{prefix}_child", metadata, Column("id", Integer, primary_key=True),
                  Column("parent_id", Integer, ForeignKey(f"{prefix}_parent.id", deferrable=True,
                                                          initially="DEFERRED")))
    return parent, child


def _outcome(step: Callable[[], Any]) -> str:
    try:
        step()
    except Exception as exc:  # recorded, compared with the oracle's
        return type(exc).__name__
    return "ok"


def play(engine: Any, parent: Table, child: Table) -> list[Any]:
    """Steps on a Session and a Connection of ``engine``; what each did, and the rows."""
    seen: list[Any] = []
    with Session(engine) as session:
        # a missing parent: fine until the commit, which fails and rolls back
        seen.append(_outcome(lambda: session.execute(insert(child).values(id=1, parent_id=999))))
        seen.append(_outcome(session.flush))
        seen.append(_outcome(session.commit))
        session.rollback()
        seen.append(session.scalar(select(func.count()).select_from(child)))
        # a valid commit; then a violation that is mended before the next commit
        session.execute(insert(parent).values(id=1, code="a"))
        session.execute(insert(child).values(id=2, parent_id=1))
        seen.append(_outcome(session.commit))
        seen.append(_outcome(lambda: session.execute(insert(child).values(id=3, parent_id=42))))
        session.execute(sql_delete(child).where(child.c.id == 3))
        seen.append(_outcome(session.commit))
        if any(isinstance(constraint, UniqueConstraint) for constraint in parent.constraints):
            # a deferred unique constraint
            seen.append(_outcome(lambda: session.execute(insert(parent).values(id=2, code="a"))))
            seen.append(_outcome(session.commit))
            session.rollback()
    with engine.connect() as conn:
        conn.execute(insert(child).values(id=4, parent_id=7))
        seen.append(_outcome(conn.commit))
        conn.rollback()
        seen.append(sorted(conn.execute(select(child.c.id)).scalars()))
        seen.append(sorted(conn.execute(select(parent.c.code)).scalars()))
    return seen
