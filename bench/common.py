"""What the benchmarks share: the schema they build and how they summarise."""

from __future__ import annotations

import statistics

from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table


def chain_schema(tables: int) -> MetaData:
    """``tables`` tables t0..tN, each with a foreign key to the one before."""
    metadata = MetaData()
    for i in range(tables):
        cols = [Column("id", Integer, primary_key=True), Column("name", String(50))]
        if i:
            cols.append(Column("parent_id", ForeignKey(f"t{i - 1}.id")))
        Table(f"t{i}", metadata, *cols)
    return metadata


def spread(values: list[float]) -> tuple[float, float, float]:
    """Median, 10th and 90th percentile."""
    deciles = statistics.quantiles(values, n=10) if len(values) > 1 else [values[0]] * 9
    return statistics.median(values), deciles[0], deciles[-1]
