"""``check-migrations``: the schema Alembic's migrations built, compared with
the models (Alembic's autogenerate comparison), at the start of the run.

A test suite that builds its schema from the migrations tests what
production will run; one that builds it from the models tests what the code
expects. When the two disagree (a column added to a model with no
migration, a type changed in one place), one of them is wrong, and the run
says so before any test, listing each difference in words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, MetaData

from .errors import ConfigError, MigrationDriftError

__unittest = True

__all__ = ["check_drift", "describe"]


def check_drift(conn: Connection, models: Sequence[MetaData], alembic: str) -> None:
    """Compare the tables on ``conn`` (its default schema, just migrated by
    ``alembic``) with ``models``; raise :class:`MigrationDriftError` listing
    the differences, if any."""
    try:
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext
    except ImportError as exc:
        raise ConfigError("check-migrations", "true", "Alembic is not installed",
                          "pip install alembic (or nose2-sqltx[alembic])") from exc
    context = MigrationContext.configure(connection=conn, opts={"compare_type": True})
    differences: list[str] = []
    for metadata in models:
        if any(table.schema is not None for table in metadata.tables.values()):
            # Only the default schema is compared: the run's stand-ins for named
            # schemas are not where the models say their tables are.
            metadata = _without_named_schemas(metadata)
        differences += [describe(diff) for diff in _flat(compare_metadata(context, metadata))]
    if differences:
        raise MigrationDriftError(alembic, differences)


def _without_named_schemas(metadata: MetaData) -> MetaData:
    kept = MetaData()
    for table in metadata.tables.values():
        if table.schema is None:
            table.to_metadata(kept)
    return kept


def _flat(diffs: list[Any]) -> list[tuple[Any, ...]]:
    # Column modifications come as a list of tuples per column.
    flat: list[tuple[Any, ...]] = []
    for diff in diffs:
        flat.extend(diff if isinstance(diff, list) else [diff])
    return flat


def describe(diff: tuple[Any, ...]) -> str:
    """One of Alembic's differences (``("add_column", schema, table, column)``
    ...) in words: which side has what."""
    kind = diff[0]
    if kind == "add_table":
        return f"table {diff[1].name}: in the models, not made by the migrations"
    if kind == "remove_table":
        return f"table {diff[1].name}: made by the migrations, not in the models"
    if kind == "add_column":
        return f"column {diff[2]}.{diff[3].name}: in the models, not made by the migrations"
    if kind == "remove_column":
        return f"column {diff[2]}.{diff[3].name}: made by the migrations, not in the models"
    if kind in ("modify_type", "modify_nullable", "modify_default", "modify_comment"):
        _, _, table, column, _, migrated, modelled = diff
        what = {"modify_type": "type", "modify_nullable": "nullable", "modify_default": "default",
                "modify_comment": "comment"}[kind]
        return f"column {table}.{column}: {what} {migrated} after the migrations, {modelled} in the models"
    if kind in ("add_index", "remove_index", "add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        obj = diff[1]
        noun = {"index": "index", "constraint": "constraint", "fk": "foreign key"}[kind.split("_", 1)[1]]
        table = getattr(getattr(obj, "table", None), "name", None) or getattr(obj, "parent", None)
        name = getattr(obj, "name", None) or "(unnamed)"
        columns = ", ".join(c.name for c in getattr(obj, "columns", ()))
        where = f" on {table}" + (f" ({columns})" if columns else "")
        side = "in the models, not made by the migrations" if kind.startswith("add") else \
            "made by the migrations, not in the models"
        return f"{noun} {name}{where}: {side}"
    return f"{kind}: {diff[1:]!r}"
